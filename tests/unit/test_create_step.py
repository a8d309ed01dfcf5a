"""Every branch of the create step, on fake services: what it sends, what it writes to the task table, what it
returns. The moto tier runs the same step end to end."""

import json
from dataclasses import replace

import pytest

from picwish_pipeline import budget, handover, tally
from picwish_pipeline.create import create_step
from picwish_pipeline.payloads import CreateState
from picwish_pipeline.scheduler import belief, plan
from picwish_pipeline.services import TransientApiError
from picwish_visual import APIConnectionError, APIServerError, AuthenticationError, InvalidRequestError, RateLimitError
from picwish_visual.catalog import get_operation
from tests.support.fake_services import NOW, Fakes, client_error, step_input

EXECUTION = "idphoto-0000000000000000000000000000000000000000000000000000000000000001"
INPUT = "picwish-input-123456789012-us-east-1"
KEY = "incoming/idphoto/fixtures/portrait.jpg"
VERSION = "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrH"  # the upload the events/ state files name


@pytest.fixture
def fakes():
    return Fakes()


def create(fakes, **previous):
    return create_step(fakes.svc, step_input("state-create.json", create={"status": "new", **previous}))


def test_a_create_claims_posts_once_in_its_slot_and_records_the_task(fakes):
    fakes.api.answers = ["task-1"]
    out = create(fakes)
    assert fakes.api.calls == [
        (
            "create",
            "idphoto",
            "https://picwish-input-123456789012-us-east-1.s3.test/incoming/idphoto/fixtures/portrait.jpg?X-Amz-Expires=900"
            f"&versionId={VERSION}",  # the exact bytes submit judged, whatever the key holds by now
            {"size": "150x200", "format": "jpg"},
            {},
        )
    ]
    assert fakes.tasks.items[EXECUTION]["task_id"] == {"S": "task-1"}
    assert fakes.limiter.called == [(NOW, NOW)]  # announced at its slot, before the POST
    first_poll = plan.first_poll(
        NOW, belief.Durations.prior(get_operation("idphoto").typical_processing_s), busy=False
    ).at
    assert out == CreateState(
        status="created",
        task_id="task-1",
        created_at=NOW,
        deadline_at=NOW + 240,
        api_calls=1,
        throttles=0,
        slot_at=first_poll,
        wait_s=int(first_poll - NOW - 0.5),
        spare=True,  # a reading: it gives its slot up to a call that cannot wait
    )
    assert fakes.limiter.within == [False, True]  # the create at its slot's start; an idle budget's first poll
    # goes out at the moment aimed for, inside its slot
    assert fakes.limiter.spare == [False, True]


def test_a_create_sends_the_upload_itself_in_bytes_mode(fakes):
    fakes.svc.settings = replace(fakes.svc.settings, input_mode="bytes")
    fakes.s3.put(INPUT, KEY, b"\xff\xd8 a photo", version_id=VERSION)
    fakes.api.answers = ["task-1"]
    assert create(fakes).status == "created"
    assert fakes.api.calls[0][2] == ("portrait.jpg", b"\xff\xd8 a photo")


def test_an_upload_replaced_before_its_create_is_never_sent_or_claimed(fakes):
    newer = fakes.s3.put(INPUT, KEY, b"not an image: a newer upload")
    out = create(fakes)
    assert (out.status, out.reason, out.api_calls) == ("failed", "replaced by a newer upload", 0)
    assert newer in out.error["message"]
    assert fakes.api.calls == [] and fakes.tasks.items == {} and fakes.limiter.reserved == []


def test_an_upload_deleted_before_its_create_is_never_sent(fakes):
    fakes.s3.delete_object(Bucket=INPUT, Key=KEY)
    out = create(fakes)
    assert (out.status, out.reason) == ("failed", "object missing")
    assert fakes.api.calls == [] and fakes.tasks.items == {}


def test_masks_are_sent_at_the_versions_submit_judged(fakes):
    mask = "masks/inpaint/fixtures/portrait.png"
    judged = fakes.s3.put(INPUT, mask, b"the judged mask")
    fakes.s3.put(INPUT, mask, b"a mask uploaded later")
    job = {**step_input("state-create.json").job.to_dict(), "operation": "inpaint"}
    job.update(options={}, masks={"mask": mask}, mask_versions={"mask": judged})
    fakes.svc.settings = replace(fakes.svc.settings, input_mode="bytes")
    fakes.api.answers = ["task-1"]
    assert create_step(fakes.svc, step_input("state-create.json", job=job)).status == "created"
    assert fakes.api.calls[0][4] == {"mask": ("portrait.png", b"the judged mask")}


def test_an_image_whose_signed_url_passes_the_api_s_512_characters_goes_as_a_file(fakes):
    long_key = "incoming/idphoto/" + "d" * 400 + "/long.jpg"
    fakes.s3.put(INPUT, long_key, b"\xff\xd8 long", version_id="long-1")
    short_key = "incoming/idphoto/short.jpg"
    fakes.s3.put(INPUT, short_key, b"\xff\xd8 short", version_id="short-1")
    for key, version in ((long_key, "long-1"), (short_key, "short-1")):
        job = step_input("state-create.json").job.to_dict()
        job["upload"] = {**job["upload"], "key": key, "version_id": version}
        fakes.api.answers = ["task-1"]
        assert create_step(fakes.svc, step_input("state-create.json", job=job, execution=key)).status == "created"
    sent_long, sent_short = fakes.api.calls[0][2], fakes.api.calls[1][2]
    assert sent_long == ("long.jpg", b"\xff\xd8 long")
    assert isinstance(sent_short, str) and sent_short.startswith("https://") and len(sent_short) <= 512


@pytest.mark.parametrize(
    "key", ["incoming/idphoto/a/./b.jpg", "incoming/idphoto/a/../b.jpg", "incoming/idphoto/../b.jpg"]
)
def test_a_key_with_dot_segments_goes_as_bytes_no_fetcher_would_ask_for_the_signed_path(fakes, key):
    fakes.s3.put(INPUT, key, b"\xff\xd8 dotted", version_id="dotted-1")
    job = step_input("state-create.json").job.to_dict()
    job["upload"] = {**job["upload"], "key": key, "version_id": "dotted-1"}
    fakes.api.answers = ["task-1"]
    assert create_step(fakes.svc, step_input("state-create.json", job=job)).status == "created"
    assert fakes.api.calls[0][2] == (key.rsplit("/", 1)[-1], b"\xff\xd8 dotted")


def test_a_queued_create_waits_for_its_place_in_the_lane_without_claiming_or_calling(fakes):
    fakes.limiter.queued_s = 30
    out = create(fakes, throttles=1, api_calls=2)
    assert out == CreateState(status="wait", throttles=1, api_calls=2, slot_at=NOW + 30, wait_s=29)
    assert fakes.api.calls == [] and fakes.tasks.items == {}


def test_a_create_that_woke_too_late_for_its_slot_takes_one_now(fakes):
    fakes.api.answers = ["task-1"]
    out = create(fakes, status="wait", slot_at=NOW - 10, wait_s=3)
    assert out.status == "created" and fakes.limiter.reserved[0] == NOW


def test_a_retried_create_reuses_the_recorded_task_and_calls_nothing(fakes):
    fakes.tasks.items[EXECUTION] = {
        "claimed_at": {"N": str(NOW - 5)},
        "task_id": {"S": "t-0"},
        "created_at": {"N": str(NOW - 4)},
    }
    out = create(fakes, throttles=2, api_calls=3)
    assert (out.status, out.task_id, out.created_at, out.api_calls, out.throttles) == ("created", "t-0", NOW - 4, 0, 2)
    assert fakes.api.calls == []


def test_a_claim_without_a_task_is_an_ambiguous_create_never_a_second_post(fakes):
    fakes.tasks.items[EXECUTION] = {"claimed_at": {"N": "1795000000.5"}}
    out = create(fakes)
    assert (out.status, out.reason) == ("failed", "ambiguous create")
    assert out.error["claimed_at"] == "2026-11-18T11:06:40.500000+00:00"
    assert out.error["message"].startswith("an earlier attempt claimed this create at 2026-11-18T11:06:40.500000")
    assert fakes.api.calls == []


def test_a_claim_taken_meanwhile_by_another_attempt_is_not_posted_again(fakes):
    fakes.tasks.items[EXECUTION] = {
        "claimed_at": {"N": str(NOW)},
        "task_id": {"S": "t-other"},
        "created_at": {"N": str(NOW)},
    }
    fakes.tasks.hidden_reads = 1  # the first read missed it
    out = create(fakes)
    assert (out.status, out.task_id) == ("created", "t-other") and fakes.api.calls == []


def test_a_401_releases_the_claim_and_tries_once_more_with_the_key_read_again(fakes):
    fakes.api.answers = [AuthenticationError("bad key", status=401)]
    out = create(fakes)
    assert (out.status, out.refresh_key, out.api_calls, out.slot_at) == ("wait", True, 1, NOW)
    assert fakes.tasks.items == {}
    fakes.api.answers = [AuthenticationError("bad key", status=401)]
    again = create_step(fakes.svc, step_input("state-create.json", create=out.to_dict()))
    assert (again.status, again.reason, again.api_calls) == ("failed", "unauthorized", 2)
    assert fakes.keys_read == [False, True]


def test_a_429_releases_the_claim_and_waits_as_long_as_the_api_asks(fakes):
    fakes.api.answers = [RateLimitError("slow down", status=429, retry_after=3)]
    out = create(fakes, throttles=1, api_calls=1)
    assert out == CreateState(status="wait", throttles=2, api_calls=2, slot_at=NOW + 3, wait_s=2)
    assert fakes.tasks.items == {}


def test_too_many_429s_end_the_job(fakes):
    fakes.api.answers = [RateLimitError("slow down", status=429)]
    out = create(fakes, throttles=3)  # the limit is 3 in these settings
    assert (out.status, out.reason, out.throttles, out.error["status"]) == ("failed", "rate limited", 4, 429)


def test_a_request_that_never_left_is_retried_by_the_state_machine(fakes):
    fakes.api.answers = [APIConnectionError("refused", request_sent=False)]
    with pytest.raises(TransientApiError):
        create(fakes)
    assert fakes.tasks.items == {}  # released: the retry may POST


@pytest.mark.parametrize(
    "error",
    [APIConnectionError("reset mid-answer", request_sent=True), APIServerError("oops", status=500)],
    ids=["answer lost", "5xx"],
)
def test_an_answer_that_may_hide_a_paid_task_ends_as_ambiguous_and_keeps_the_claim(fakes, error):
    fakes.api.answers = [error]
    out = create(fakes)
    assert (out.status, out.reason, out.api_calls) == ("failed", "ambiguous create", 1)
    assert "task_id" not in fakes.tasks.items[EXECUTION]  # kept: no later attempt POSTs


def test_a_refused_request_is_rejected_and_releases_the_claim(fakes):
    fakes.api.answers = [InvalidRequestError("size: bad", status=400, param="size")]
    out = create(fakes)
    assert (out.status, out.reason, out.error["status"], out.error["param"]) == (
        "failed",
        "rejected by the API",
        400,
        "size",
    )
    assert fakes.tasks.items == {}


def test_a_create_that_must_read_the_key_again_still_does_after_waiting_for_its_slot(fakes):
    fakes.limiter.queued_s = 5
    out = create(fakes, status="wait", refresh_key=True, api_calls=1)
    assert (out.status, out.refresh_key) == ("wait", True)  # carried over the wait, to the attempt that calls


# A queue deeper than the execution's horizon (events/state-create.json: started at NOW, 151,200 s to create).
HORIZON = NOW + 151_200


def test_a_slot_within_the_execution_s_horizon_is_waited_for(fakes):
    fakes.limiter.queued_s = 151_000
    out = create(fakes)
    assert (out.status, out.slot_at, out.wait_s) == ("wait", NOW + 151_000, 151_000 - 1)
    assert fakes.sfn.started == [] and fakes.api.calls == []


def test_a_slot_past_the_horizon_is_held_while_the_execution_waits_until_its_horizon(fakes):
    fakes.limiter.queued_s = 200_000
    out = create(fakes)
    assert (out.status, out.slot_at, out.wait_s) == ("wait", NOW + 200_000, 151_200)
    assert fakes.sfn.started == [] and fakes.api.calls == []


def test_at_the_horizon_the_held_slot_goes_to_a_fresh_execution_of_the_upload(fakes):
    fakes.now = HORIZON - 0.5
    out = create(fakes, slot_at=NOW + 200_000, throttles=1, api_calls=1)
    assert (out.status, out.slot_at, out.handovers) == ("handed over", NOW + 200_000, 1)
    assert fakes.api.calls == [] and fakes.tasks.items == {}  # nothing claimed, nothing sent
    [started] = fakes.sfn.started
    assert started["stateMachineArn"] == "arn:aws:states:us-east-1:123456789012:stateMachine:picwish-pipeline"
    assert started["name"] == EXECUTION + "-h1"
    handed = json.loads(started["input"])
    assert handed["create"] == {
        "status": "wait",
        "throttles": 1,
        "api_calls": 1,
        "slot_at": NOW + 200_000,
        "handovers": 1,
    }
    assert handed["job"] == step_input("state-create.json").job.to_dict()
    assert "execution" not in handed and "started_at" not in handed  # the machine hands those in


def test_a_retried_hand_over_finds_the_next_execution_started_and_ends_the_same(fakes):
    fakes.now = HORIZON - 0.5
    fakes.sfn.fail_with = client_error("ExecutionAlreadyExists", "StartExecution")
    out = create(fakes, slot_at=NOW + 200_000)
    assert (out.status, out.handovers) == ("handed over", 1)


def test_a_handed_over_execution_names_the_next_one_from_the_upload_s_name():
    assert handover.next_name(EXECUTION + "-h1", 2) == EXECUTION[:77] + "-h2"
    assert handover.next_name("resume-abc", 1) == "resume-abc-h1"
    assert len(handover.next_name("x" * 80, 12)) == 80


# -- the credit budget and the backfill's lane ------------------------------------------------------------------


def _budget(fakes, budget: int, spent_this_hour: int, recheck_s: int = 120) -> None:
    settings = replace(fakes.svc.settings, credit_budget=budget, budget_recheck_s=recheck_s)
    object.__setattr__(fakes.svc, "settings", settings)
    fakes.tasks.tally[tally.hour_key(NOW)] = {"credits": spent_this_hour}


def test_a_create_the_budget_cannot_pay_for_waits_without_a_call_and_takes_a_new_place_after(fakes):
    _budget(fakes, budget=5, spent_this_hour=5)
    out = create(fakes)
    assert (out.status, out.slot_at, out.wait_s, out.budget_used) == ("wait", None, 120, 100.0)
    assert fakes.api.calls == [] and EXECUTION not in fakes.tasks.items  # no POST, no claim
    _budget(fakes, budget=50, spent_this_hour=5)  # the budget raised
    fakes.api.answers = ["task-1"]
    again = create_step(fakes.svc, step_input("state-create.json", create=out.to_dict()))
    assert again.status == "created" and again.budget_used == 10.0
    assert len(fakes.limiter.lanes) == 2  # it took a new place in the lane after its wait


def test_credits_spent_earlier_in_the_day_count_and_those_of_yesterday_do_not(fakes):
    _budget(fakes, budget=10, spent_this_hour=0)
    fakes.tasks.tally[tally.hour_key(NOW - 23 * 3600)] = {"credits": 6, "credits_undocumented": 3}
    fakes.tasks.tally[tally.hour_key(NOW - 24 * 3600)] = {"credits": 100}
    assert budget.spent(fakes.svc, NOW) == 9
    fakes.api.answers = ["task-1"]
    assert create(fakes).status == "created"  # 9 + 1 credit fits 10


def test_a_backfill_s_create_takes_the_backfill_lane_with_the_uploads_share_kept(fakes):
    object.__setattr__(fakes.svc, "settings", replace(fakes.svc.settings, live_share=0.3))
    payload = step_input("state-create.json", create={"status": "new"})
    backfilled = replace(payload, job=replace(payload.job, intake="backfill"))
    fakes.api.answers = ["task-1", "task-2"]
    create_step(fakes.svc, backfilled)
    create_step(fakes.svc, replace(payload, execution="another"))
    assert fakes.limiter.lanes == [(True, 0.3), (False, 0.3)]
