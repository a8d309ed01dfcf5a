"""The mock's endpoints in-process: envelope, statuses, lifecycle, scenarios, journal, credits and outputs."""

import base64
import hashlib
import io
import zipfile

import pytest
from PIL import Image

from mock_server import MockConfig, create_app
from picwish_visual.states import TASK_STATES
from tests.functional.conftest import KEY, OTHER_KEY
from tests.support import images

H = {"X-API-KEY": KEY}
PHOTO = images.photo(80, 60)


def form(**fields):
    data = {"sync": "0"}
    for name, value in fields.items():
        data[name] = (io.BytesIO(value), f"{name}.bin") if isinstance(value, bytes) else value
    return data


def create(web, operation, headers=None, **fields):
    return web.post(f"/api/tasks/visual/{operation}", headers={**H, **(headers or {})}, data=form(**fields))


def query(web, operation, task_id, headers=None):
    return web.get(f"/api/tasks/visual/{operation}/{task_id}", headers={**H, **(headers or {})})


def run_to_end(web, operation, task_id, limit=200):
    for _ in range(limit):
        body = query(web, operation, task_id).json
        state = body["data"].get("state")
        if state == 1 or (isinstance(state, int) and state < 0):
            return body
    raise AssertionError("task never ended")


def fetch(web, url):
    return web.get(url.split("localhost", 1)[1])


def test_async_flow_envelope_and_every_documented_field(web):
    r = create(web, "retouching-collection", image_file=PHOTO, mask_file=images.mask(80, 60), type="2")
    assert (r.status_code, r.json["status"], r.json["message"]) == (200, 200, "success")
    task_id = r.json["data"]["task_id"]
    body = run_to_end(web, "retouching-collection", task_id)
    data = body["data"]
    assert data["state"] == 1 and data["progress"] == 100 and data["task_id"] == task_id
    for name in ("created_at", "processed_at", "completed_at"):
        assert data[name].isdigit()
    assert (data["return_type"], data["type"], data["state_detail"]) == (1, 2, "success")
    float(data["time_elapsed"])
    image = fetch(web, data["image"])
    assert image.status_code == 200 and image.content_type == "image/png"


def test_processing_states_and_rising_progress():
    clock = [1000.0]
    app = create_app(MockConfig(api_keys=(KEY,), qps=0, processing_s={"inpaint": 6.0}), backend=None)
    backend = app.extensions["picwish_mock"]
    backend.clock = lambda: clock[0]
    web = app.test_client()
    task_id = create(web, "inpaint", image_file=PHOTO, rectangles='[{"x":1,"y":1,"width":5,"height":5}]').json["data"][
        "task_id"
    ]
    seen = []
    for _ in range(7):
        data = query(web, "inpaint", task_id).json["data"]
        seen.append((data["state"], data["progress"]))
        clock[0] += 1.0
    states = [s for s, _ in seen]
    assert states == [0, 2, 3, 4, 6, 5, 1]  # one state per second of the six, inpaint loops (6)
    assert [p for _, p in seen] == sorted(p for _, p in seen)
    assert seen[0] == (0, 0) and seen[-1] == (1, 100)


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, [0, 30, 50, 70, 90]),
        ("progress_curve=2", [0, 9, 25, 48, 81]),
        ("progress_points=0.1:5|0.6:5|0.7:95", [5, 5, 5, 95, 95]),  # a stall, then a jump the time did not show
    ],
)
def test_progress_follows_its_curve(prefer, expected):
    clock = [1000.0]
    app = create_app(MockConfig(api_keys=(KEY,), qps=0, processing_s={"correction": 10.0}), backend=None)
    app.extensions["picwish_mock"].clock = lambda: clock[0]
    web = app.test_client()
    headers = {"Prefer": prefer} if prefer else {}
    task_id = create(web, "correction", headers=headers, image_file=PHOTO).json["data"]["task_id"]
    seen = []
    for at in (1, 3, 5, 7, 9):
        clock[0] = 1000.0 + at
        seen.append(query(web, "correction", task_id).json["data"]["progress"])
    # By default queued (state 0) for the first fifth, then the fraction of the time to the power
    assert seen == expected


def test_results_are_rendered_from_inputs_no_larger_than_the_render_size():
    app = create_app(MockConfig(api_keys=(KEY,), qps=0, time_scale=0.001, render_max_side=64), backend=None)
    web = app.test_client()
    big = images.encode(Image.new("RGB", (400, 300), (200, 120, 40)), "JPEG")
    task_id = create(web, "correction", image_file=big).json["data"]["task_id"]
    data = run_to_end(web, "correction", task_id)["data"]
    out = Image.open(io.BytesIO(fetch(web, data["image"]).data))
    assert max(out.size) <= 64


def test_progression_by_polls(web):
    task_id = create(web, "idphoto", headers={"Prefer": "polls=3, processing=1000"}, image_file=PHOTO).json["data"][
        "task_id"
    ]
    states = [query(web, "idphoto", task_id).json["data"]["state"] for _ in range(4)]
    assert states[2:] == [1, 1] and states[0] in (0, 2, 3)


@pytest.mark.parametrize("state", [s for s in TASK_STATES if s < 0])
def test_every_failure_state_is_reachable_with_prefer(web, state):
    task_id = create(web, "correction", headers={"Prefer": f"state={state}"}, image_file=PHOTO).json["data"]["task_id"]
    data = run_to_end(web, "correction", task_id)["data"]
    assert data["state"] == state and "image" not in data


def test_script_with_odd_values(web):
    task_id = create(web, "idphoto", headers={"Prefer": "script=0|7|null|missing, polls=4"}, image_file=PHOTO).json[
        "data"
    ]["task_id"]
    seen = [query(web, "idphoto", task_id).json["data"] for _ in range(5)]
    assert [d.get("state", "absent") for d in seen] == [0, 7, None, "absent", "absent"]


@pytest.mark.parametrize("status", [400, 401, 404, 413, 429, 500])
def test_prefer_status_on_create_and_query(web, status):
    r = create(web, "idphoto", headers={"Prefer": f"status={status}"}, image_file=PHOTO)
    assert (r.status_code, r.json["status"], r.json["data"]) == (status, status, None)
    if status == 429:
        assert r.headers["Retry-After"] == "1"
    task_id = create(web, "idphoto", image_file=PHOTO).json["data"]["task_id"]
    q = query(web, "idphoto", task_id, headers={"Prefer": f"status={status}"})
    assert q.status_code == status


def test_errors_in_body_option(web):
    r = create(web, "idphoto", headers={"Prefer": "status=429, body-status"}, image_file=PHOTO)
    assert (r.status_code, r.json["status"]) == (200, 429)
    app = create_app(MockConfig(api_keys=(KEY,), errors_in_body=True))
    r = app.test_client().get("/api/tasks/visual/idphoto/nope", headers=H)
    assert (r.status_code, r.json["status"]) == (200, 404)


def test_auth_and_not_found(web):
    assert web.post("/api/tasks/visual/idphoto", data=form(image_file=PHOTO)).status_code == 401
    r = create(web, "idphoto", headers={"X-API-KEY": "wrong"}, image_file=PHOTO)
    assert r.json["message"].startswith("Unauthorized API key")
    assert create(web, "resize", image_file=PHOTO).status_code == 404
    assert query(web, "idphoto", "no-such-task").status_code == 404
    task_id = create(web, "idphoto", image_file=PHOTO).json["data"]["task_id"]
    assert query(web, "idphoto", task_id, headers={"X-API-KEY": OTHER_KEY}).status_code == 404
    assert query(web, "correction", task_id).status_code == 404  # a task belongs to its operation
    r = web.get("/no/such/path")
    assert (r.status_code, r.json["status"]) == (404, 404)


@pytest.mark.parametrize(
    ("operation", "fields", "message"),
    [
        ("idphoto", {}, "image_file: one of image_url / image_file is required"),
        ("idphoto", {"image_file": PHOTO, "image_url": "http://x.test/a.jpg"}, "image_url: only one of"),
        ("idphoto", {"image_file": PHOTO, "size": "300X400"}, "size: must be {width}x{height}"),
        ("idphoto", {"image_file": PHOTO, "size": "100x2001"}, "size: must be {width}x{height}"),
        ("idphoto", {"image_file": PHOTO, "bg_color": "FFFFFF"}, "bg_color: only allowed with format=jpg"),
        ("idphoto", {"image_file": PHOTO, "format": "jpg", "bg_color": "white"}, "bg_color: must be a colour"),
        ("idphoto", {"image_file": PHOTO, "format": "gif"}, "format: must be one of png, jpg"),
        ("idphoto", {"image_file": PHOTO, "sync": "2"}, "sync: must be 0 or 1"),
        ("idphoto", {"image_url": "x" * 600}, "image_url: must be at most 512 characters"),
        ("correction", {"image_file": PHOTO, "return_type": "3"}, "return_type: only allowed with sync=1"),
        ("correction", {"image_file": PHOTO, "type": "9"}, "type: must be one of 0, 1, 2, 3, 4"),
        ("retouching-collection", {"image_file": PHOTO}, "mask_file: one of mask_url / mask_file is required"),
        ("retouching-collection", {"image_file": PHOTO, "mask_file": PHOTO, "line_strength": "101"}, "line_strength"),
        ("inpaint", {"image_file": PHOTO, "rectangles": "[]"}, "rectangles: must be a JSON array of 1 to 50"),
        (
            "inpaint",
            {"image_file": PHOTO, "mask_file": PHOTO, "rectangles": '[{"x":0,"y":0,"width":1,"height":1}]'},
            "mask_file: only one of",
        ),
        ("clothing-segmentation", {"image_file": PHOTO, "class_type": "x"}, "class_type: must be an integer"),
    ],
)
def test_validation_400_names_the_parameter(web, operation, fields, message):
    fields = {"sync": "0", **fields}
    data = {k: (io.BytesIO(v), "f.jpg") if isinstance(v, bytes) else v for k, v in fields.items()}
    r = web.post(f"/api/tasks/visual/{operation}", headers=H, data=data)
    assert (r.status_code, r.json["status"]) == (400, 400)
    assert r.json["message"].startswith(message)


def test_retouching_file_wins_over_url(web):
    r = create(
        web,
        "retouching-collection",
        image_file=PHOTO,
        image_url="http://127.0.0.1:9/none.jpg",
        mask_file=images.mask(80, 60),
    )
    assert run_to_end(web, "retouching-collection", r.json["data"]["task_id"])["data"]["state"] == 1


def test_upload_over_the_limit_is_413(web):
    big = PHOTO + b"\0" * (20 * 1024 * 1024)
    r = create(web, "idphoto", image_file=big)
    assert (r.status_code, r.json["status"]) == (413, 413)
    # Retouching allows 30 MB.
    assert create(web, "retouching-collection", image_file=big, mask_file=images.mask(80, 60)).status_code == 200


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"image_file": images.corrupt_jpeg()}, -7),
        ({"image_file": b"plain text, not an image"}, -7),
        ({"image_file": images.encode(Image.new("1", (4097, 8)), "PNG")}, -14),
    ],
)
def test_bad_images_fail_the_task(web, fields, state):
    task_id = create(web, "idphoto", **fields).json["data"]["task_id"]
    assert run_to_end(web, "idphoto", task_id)["data"]["state"] == state


def test_qps_limit_rolling_window():
    clock = [50.0]
    app = create_app(MockConfig(api_keys=(KEY,), qps=2))
    backend = app.extensions["picwish_mock"]
    backend.clock = backend.limiter.clock = lambda: clock[0]
    web = app.test_client()
    statuses = [query(web, "idphoto", "x").status_code for _ in range(3)]
    assert statuses == [404, 404, 429]
    clock[0] += 0.5
    assert query(web, "idphoto", "x").status_code == 429
    clock[0] += 0.6
    assert query(web, "idphoto", "x").status_code == 404


def test_sync_returns_the_final_result(web):
    r = create(
        web,
        "idphoto",
        image_file=images.portrait(),
        sync="1",
        size="120x160",
        format="jpg",
        bg_color="00FF00",
        return_type="2",
    )
    data = r.json["data"]
    assert data["state"] == 1
    result = Image.open(io.BytesIO(base64.b64decode(data["image"])))
    assert (result.format, result.size) == ("JPEG", (120, 160))
    corner = result.convert("RGB").getpixel((0, 0))
    assert corner[1] > 200 and corner[0] < 60 and corner[2] < 60  # the requested green background


def test_sync_binary_for_correction(web):
    r = create(web, "correction", image_file=PHOTO, sync="1", return_type="3", type="4")
    assert r.status_code == 200 and r.content_type == "image/png" and r.headers["X-Task-Id"]
    assert Image.open(io.BytesIO(r.data)).mode == "RGBA"


def test_result_links_expire_like_object_storage(web, backend):
    r = create(web, "idphoto", image_file=PHOTO, sync="1")
    url = r.json["data"]["image"]
    assert fetch(web, url).status_code == 200
    backend.clock = lambda: 10**12
    expired = fetch(web, url)
    assert expired.status_code == 403 and b"Request has expired" in expired.data
    assert fetch(web, url.rsplit("/", 2)[0] + "/unknown/result.png").status_code == 404


def test_rules_match_operation_and_filename_and_count(web):
    rule = web.post("/__mock__/rules", json={"operation": "idphoto", "filename": "bad-*", "state": -5, "times": 1})
    assert rule.status_code == 201
    good = create(web, "idphoto", image_file=PHOTO)  # file name "image_file.bin": no match
    bad = web.post("/api/tasks/visual/idphoto", headers=H, data={"image_file": (io.BytesIO(PHOTO), "bad-1.jpg")})
    again = web.post("/api/tasks/visual/idphoto", headers=H, data={"image_file": (io.BytesIO(PHOTO), "bad-2.jpg")})
    assert run_to_end(web, "idphoto", good.json["data"]["task_id"])["data"]["state"] == 1
    assert run_to_end(web, "idphoto", bad.json["data"]["task_id"])["data"]["state"] == -5
    assert run_to_end(web, "idphoto", again.json["data"]["task_id"])["data"]["state"] == 1  # times=1 used up
    listed = web.get("/__mock__/rules").json["rules"]
    assert listed[0]["applied"] == 1 and listed[0]["state"] == -5
    web.delete("/__mock__/rules")
    assert web.get("/__mock__/rules").json["rules"] == []


def test_rule_query_status_then_recovers(web):
    web.post("/__mock__/rules", json={"query_status": 500, "query_status_count": 2})
    task_id = create(web, "idphoto", image_file=PHOTO).json["data"]["task_id"]
    codes = [query(web, "idphoto", task_id).status_code for _ in range(3)]
    assert codes == [500, 500, 200]


def test_bad_rule_is_a_clear_400(web):
    r = web.post("/__mock__/rules", json={"state": "minus five"})
    assert r.status_code == 400 and "state" in r.json["error"]
    assert web.post("/__mock__/rules", json={"operation": "resize"}).json["error"].startswith("operation")


def test_journal_credits_and_reset(web):
    task_id = create(web, "idphoto", image_file=PHOTO, sync="1").json["data"]["task_id"]
    create(web, "correction", image_file=PHOTO, sync="1")
    journal = web.get("/__mock__/requests").json["requests"]
    assert [e["operation"] for e in journal] == ["idphoto", "correction"]
    assert journal[0]["fields"]["image_file"] == {
        "filename": "image_file.bin",
        "bytes": len(PHOTO),
        "sha256": hashlib.sha256(PHOTO).hexdigest(),
    }
    assert journal[0]["task_id"] == task_id and KEY not in str(journal)
    stats = web.get("/__mock__/credits").json
    assert stats["credits"] == {KEY: 1 + 3} and stats["tasks_created"] == {KEY: 2}
    web.post("/__mock__/reset")
    assert web.get("/__mock__/requests").json["requests"] == []
    assert query(web, "idphoto", task_id).status_code == 404


def test_failed_tasks_cost_no_credit(web):
    create(web, "idphoto", headers={"Prefer": "state=-1"}, image_file=PHOTO, sync="1")
    assert web.get("/__mock__/credits").json["credits"] == {}


def test_over_180_seconds_ends_in_minus_8(web):
    task_id = create(web, "idphoto", headers={"Prefer": "processing=500"}, image_file=PHOTO).json["data"]["task_id"]
    assert run_to_end(web, "idphoto", task_id, limit=10**6)["data"]["state"] == -8


def test_unexpected_exception_is_a_500_envelope(web, backend, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(backend, "create_task", boom)
    r = create(web, "idphoto", image_file=PHOTO)
    assert (r.status_code, r.json["status"]) == (500, 500)
    assert "internal detail" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)


# -- outputs follow the request ------------------------------------------------------------------------------


def result_image(web, operation, **fields):
    data = create(web, operation, sync="1", **fields).json["data"]
    assert data["state"] == 1, data
    return Image.open(io.BytesIO(fetch(web, data["image"]).data))


def test_idphoto_transparent_png_at_the_requested_size(web):
    im = result_image(web, "idphoto", image_file=images.portrait(), size="100x140")
    assert (im.format, im.mode, im.size) == ("PNG", "RGBA", (100, 140))
    assert im.getpixel((0, 0))[3] == 0  # background made transparent
    assert im.getpixel((50, 70))[3] == 255  # the subject kept


def test_idphoto_default_is_the_original_size(web):
    assert result_image(web, "idphoto", image_file=PHOTO).size == (80, 60)


def test_inpaint_changes_exactly_the_mask(web):
    mask = images.mask(80, 60, box=(10, 10, 29, 29))
    src = Image.open(io.BytesIO(images.photo(80, 60, fmt="PNG"))).convert("RGB")
    out = result_image(web, "inpaint", image_file=images.photo(80, 60, fmt="PNG"), mask_file=mask).convert("RGB")
    m = Image.open(io.BytesIO(mask)).convert("L")
    changed = {(x, y) for x in range(80) for y in range(60) if src.getpixel((x, y)) != out.getpixel((x, y))}
    assert changed and all(m.getpixel(p) == 255 for p in changed)


def test_inpaint_rectangles(web):
    src = Image.open(io.BytesIO(images.photo(80, 60, fmt="PNG"))).convert("RGB")
    rects = '[{"x":40,"y":5,"width":10,"height":10}]'
    out = result_image(web, "inpaint", image_file=images.photo(80, 60, fmt="PNG"), rectangles=rects).convert("RGB")
    changed = {(x, y) for x in range(80) for y in range(60) if src.getpixel((x, y)) != out.getpixel((x, y))}
    assert changed and all(40 <= x < 50 and 5 <= y < 15 for x, y in changed)


def test_retouching_respects_retain_mask_and_strength(web):
    png = images.photo(80, 60, fmt="PNG")
    src = Image.open(io.BytesIO(png)).convert("RGB")
    mask = images.mask(80, 60, box=(0, 0, 79, 59))
    retain = images.mask(80, 60, box=(0, 0, 39, 59))

    def diff(strength):
        out = result_image(
            web,
            "retouching-collection",
            image_file=png,
            mask_file=mask,
            retain_mask_file=retain,
            retouch_strength=str(strength),
        ).convert("RGB")
        total, left_changed = 0, 0
        for x in range(80):
            for y in range(60):
                d = sum(abs(a - b) for a, b in zip(src.getpixel((x, y)), out.getpixel((x, y)), strict=True))
                total += d
                left_changed += d if x < 40 else 0
        return total, left_changed

    weak, weak_left = diff(10)
    strong, strong_left = diff(90)
    assert weak_left == 0 and strong_left == 0  # retained pixels untouched
    assert strong > weak > 0


@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_correction_types(web, kind):
    im = result_image(web, "correction", image_file=images.portrait(), type=str(kind))
    assert im.format == "JPEG"
    if kind in (0, 2, 3):
        assert im.size[0] < 80 and im.size[1] < 60  # cropped to the content
    if kind in (1, 2):
        assert im.mode == "L" or len(set(im.convert("RGB").getpixel((5, 5)))) == 1  # text enhanced to grey


@pytest.mark.parametrize(("class_type", "expected"), [(1, 5), (2, 7), (3, 4), (4, 12)])
def test_clothing_masks_per_class_type(web, class_type, expected):
    data = create(web, "clothing-segmentation", image_file=PHOTO, class_type=str(class_type), sync="1").json["data"]
    assert len(data["class_masks"]) == expected and data["output_type"] == 1 and data["clothes_masks"] == ""
    first = Image.open(io.BytesIO(fetch(web, next(iter(data["class_masks"].values()))).data))
    assert (first.mode, first.size) == ("L", (80, 60))


@pytest.mark.parametrize(("output_type", "masks", "zipped"), [(2, 0, True), (3, 5, True)])
def test_clothing_zip(web, output_type, masks, zipped):
    data = create(web, "clothing-segmentation", image_file=PHOTO, output_type=str(output_type), sync="1").json["data"]
    assert len(data["class_masks"]) == masks
    archive = zipfile.ZipFile(io.BytesIO(fetch(web, data["clothes_masks"]).data))
    assert "tops_left.png" in archive.namelist() and len(archive.namelist()) == 10


def test_chaos_faults_by_rate(web):
    assert web.post("/__mock__/chaos", json={"500": 1.0, "seed": 3}).json == {"chaos": {"500": 1.0}}
    assert create(web, "idphoto", image_file=PHOTO).status_code == 500
    web.post("/__mock__/chaos", json={"429-body": 1.0})
    r = create(web, "idphoto", image_file=PHOTO)
    assert (r.status_code, r.json["status"]) == (200, 429)
    web.post("/__mock__/chaos", json={"truncate": 1.0})
    r = create(web, "idphoto", image_file=PHOTO)
    assert r.status_code == 200 and r.get_data(as_text=True) == '{"status": 200, "message": "succ'
    web.post("/__mock__/chaos", json={})
    assert create(web, "idphoto", image_file=PHOTO).status_code == 200
    assert [e["chaos"] for e in web.get("/__mock__/requests").json["requests"]] == ["500", "429-body", "truncate", None]
    assert web.post("/__mock__/chaos", json={"explode": 0.5}).status_code == 400


def test_task_times_are_exact(web):
    task_id = create(web, "idphoto", image_file=PHOTO, sync="1").json["data"]["task_id"]
    times = web.get("/__mock__/tasks").json["tasks"][task_id]
    assert times["state"] == 1 and times["completed"] >= times["created"] and isinstance(times["created"], float)


def test_the_scenario_api_is_off_unless_asked_for():
    # It resets the mock and lists live result links: nobody who can reach the port gets it by default.
    web = create_app(MockConfig(api_keys=(KEY,))).test_client()
    assert web.post("/__mock__/reset").status_code == 404
    assert web.get("/__mock__/requests").status_code == 404
    assert create_app(MockConfig(api_keys=(KEY,), admin=True)).test_client().get("/__mock__/rules").status_code == 200


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [("reset", 200, b'{"status": 200, "message": "succ'), ("not-json", 502, b"<html><body><h1>502 Bad Gateway")],
)
def test_a_rule_answers_a_tasks_polls_with_a_reset_or_a_page_that_is_not_json(web, fault, status, body):
    rule = web.post("/__mock__/rules", json={"filename": "odd.jpg", "query_fault": fault, "query_status_count": 2})
    assert rule.status_code == 201, rule.json
    data = {"sync": "0", "image_file": (io.BytesIO(PHOTO), "odd.jpg")}
    created = web.post("/api/tasks/visual/idphoto", data=data, headers=H).json["data"]["task_id"]
    answers = [query(web, "idphoto", created) for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [status, status]
    assert all(a.data.startswith(body) for a in answers[:2])
    assert answers[2].status_code == 200 and answers[2].json["status"] == 200
    assert web.post("/__mock__/rules", json={"query_fault": "teapot"}).json["error"].startswith("query_fault")
