"""The S3 contract (keys, identity, execution names) and options from metadata."""

import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from picwish_pipeline.options import options_from_metadata, parse_defaults
from picwish_pipeline.uploads import UploadRef, parse_job_path
from picwish_visual import ValidationError, get_operation

EVENTS = Path(__file__).resolve().parents[2] / "events"


def test_every_record_of_an_event_is_decoded_on_its_own():
    records = json.loads((EVENTS / "s3-put-multi.json").read_text())["Records"]
    keys = [UploadRef.from_event_record(r).key for r in records]
    assert keys == [
        "incoming/idphoto/batch/a b.jpg",
        "incoming/resize/batch/c.jpg",
        "incoming/correction/batch/ünï cödé.jpg",
    ]


def test_plus_and_percent_in_keys():
    record = json.loads((EVENTS / "s3-put-correction.json").read_text())["Records"][0]
    assert UploadRef.from_event_record(record).key == "incoming/correction/scans/receipt 2026+final.jpg"


def test_job_paths():
    path = parse_job_path("incoming/idphoto/My Photos/über me (1).jpg")
    assert (path.operation, path.subpath, path.filename, path.stem) == (
        "idphoto",
        "My Photos",
        "über me (1).jpg",
        "über me (1)",
    )
    assert path.result_prefix == "results/idphoto/My Photos/über me (1).jpg/"
    assert path.failure_key == "failed/idphoto/My Photos/über me (1).jpg.json"
    assert path.mask_key("mask") == "masks/idphoto/My Photos/über me (1).png"
    assert path.mask_key("retain_mask") == "masks/idphoto/My Photos/über me (1).retain.png"
    top = parse_job_path("incoming/inpaint/a.png")
    assert (top.subpath, top.result_prefix) == ("", "results/inpaint/a.png/")
    bare = parse_job_path("incoming/a.png")
    assert (bare.known_operation, bare.failure_key) == (False, "failed/a.png.json")
    assert parse_job_path("results/x.png") is None


def test_identity_ignores_event_time_and_request_ids():
    record = json.loads((EVENTS / "s3-put-idphoto.json").read_text())["Records"][0]
    other = json.loads(json.dumps(record))
    other["eventTime"] = "2026-11-21T13:00:00.000Z"
    other["responseElements"]["x-amz-request-id"] = "ANOTHER"
    one, two = UploadRef.from_event_record(record), UploadRef.from_event_record(other)
    assert one.execution_name("idphoto") == two.execution_name("idphoto")
    overwritten = UploadRef(one.bucket, one.key, sequencer="0062B4C0F3A1D2E3F5", etag=one.etag)
    assert overwritten.execution_name("idphoto") != one.execution_name("idphoto")
    versioned = UploadRef(one.bucket, one.key, version_id="v2", sequencer=one.sequencer)
    assert versioned.identity == "v2"


keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).filter(
    lambda k: len(("incoming/idphoto/" + k).encode()) <= 1024
)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_any_key_round_trips_to_a_result_key_and_a_valid_execution_name(name):
    from urllib.parse import quote_plus

    key = f"incoming/idphoto/{name}"
    record = {"s3": {"bucket": {"name": "b"}, "object": {"key": quote_plus(key, safe="/"), "sequencer": "01"}}}
    upload = UploadRef.from_event_record(record)
    assert upload.key == key
    execution = upload.execution_name("idphoto")
    assert re.fullmatch(r"[0-9A-Za-z_-]{1,80}", execution)
    path = parse_job_path(upload.key)
    if key.endswith("/"):  # a folder marker: not a job
        assert path is None
        return
    assert path.result_prefix.startswith("results/idphoto/") and path.failure_key.startswith("failed/idphoto/")


def test_options_from_metadata_over_defaults():
    op = get_operation("idphoto")
    defaults = parse_defaults('{"idphoto": {"format": "jpg", "size": "295x413"}}')
    options, ignored = options_from_metadata(op, {"bg-color": "FFFFFF", "size": "300x400", "owner": "x"}, defaults)
    assert options == {"format": "jpg", "size": "300x400", "bg_color": "FFFFFF"}
    assert ignored == ["owner"]


def test_bad_metadata_names_the_parameter():
    with pytest.raises(ValidationError, match=r"^retouch_strength: must be between 0 and 100; got 150$"):
        options_from_metadata(get_operation("retouching-collection"), {"retouch-strength": "150"})


@pytest.mark.parametrize("text", ["[]", '{"idphoto": 1}', "not json"])
def test_bad_defaults_are_refused(text):
    with pytest.raises(ValueError):
        parse_defaults(text)


def test_execution_name_alphabet_is_small():
    assert set(UploadRef("b", "incoming/x/ä b").execution_name("x y")) <= set(
        string.ascii_letters + string.digits + "_-"
    )
