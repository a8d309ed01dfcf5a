"""Output keys are a one-to-one function of the input key and always fit S3's 1,024-byte limit."""

import hashlib
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from picwish_pipeline.uploads import MAX_OUTPUT_NAME_BYTES, S3_KEY_MAX_BYTES, parse_job_path

# The longest names a job writes under its result prefix (the class names and extensions the pipeline uses).
LONGEST_OUTPUTS = ("result.json", "clothes_masks.zip", "x" * (MAX_OUTPUT_NAME_BYTES - 5) + ".webp")


def output_keys(key: str) -> list[str]:
    path = parse_job_path(key)
    return [path.failure_key, *(path.result_prefix + name for name in LONGEST_OUTPUTS)]


def test_same_stem_different_files_get_their_own_keys():
    jpg, png = parse_job_path("incoming/correction/x/me.jpg"), parse_job_path("incoming/correction/x/me.png")
    assert jpg.result_prefix == "results/correction/x/me.jpg/"
    assert png.result_prefix == "results/correction/x/me.png/"
    assert (jpg.failure_key, png.failure_key) == ("failed/correction/x/me.jpg.json", "failed/correction/x/me.png.json")


def test_a_file_without_an_operation_folder_cannot_collide_with_an_operation_called_unknown():
    assert parse_job_path("incoming/a.png").failure_key != parse_job_path("incoming/unknown/a.png").failure_key


def test_folder_markers_are_not_jobs():
    assert parse_job_path("incoming/idphoto/folder/") is None
    assert parse_job_path("incoming/") is None


def test_the_longest_valid_key_gets_output_keys_within_the_limit_and_keeps_its_identity():
    base = "incoming/idphoto/" + "d/" * 300
    one = base + "a" * (S3_KEY_MAX_BYTES - len(base) - 4) + ".jpg"
    two = one[:-5] + "b.jpg"  # differs only past the point where the key must be shortened
    assert len(one.encode()) == S3_KEY_MAX_BYTES
    for key in (one, two):
        assert all(len(k.encode()) <= S3_KEY_MAX_BYTES for k in output_keys(key))
    assert set(output_keys(one)).isdisjoint(output_keys(two))
    assert parse_job_path(one).result_prefix.endswith("~" + hashlib.sha256(one[9:].encode()).hexdigest()[:32] + "/")


def test_a_short_key_that_looks_shortened_cannot_take_a_long_keys_place():
    long_key = "incoming/idphoto/" + "ü" * 500 + ".jpg"
    shortened = parse_job_path(long_key).failure_key[len("failed/") : -len(".json")]
    lookalike = "incoming/" + shortened
    assert len(lookalike.encode()) <= S3_KEY_MAX_BYTES
    assert set(output_keys(lookalike)).isdisjoint(output_keys(long_key))


def test_mask_keys_of_long_inputs_are_none_rather_than_invalid():
    key = "incoming/inpaint/" + "m" * 1000 + ".png"
    path = parse_job_path(key)
    # `masks/inpaint/` + 1,000 characters + `.png` is 1,018 bytes: it fits, as the retain mask's 1,025 does not.
    assert path.mask_key("mask") == "masks/inpaint/" + "m" * 1000 + ".png"
    assert path.mask_key("retain_mask") is None
    longest = parse_job_path("incoming/inpaint/" + "m" * 1003 + ".png")  # the longest key S3 takes there
    assert len(longest.mask_key("mask").encode()) == 1021 and longest.mask_key("retain_mask") is None


# Segments from a small alphabet so that hypothesis often makes keys that share long prefixes, differ only in
# their extension, or sit right at the byte limit — where collisions would hide.
segment = st.text(alphabet=st.sampled_from("aü.~/ "), min_size=1, max_size=12)
long_tail = st.integers(min_value=0, max_value=1015)


@st.composite
def input_keys(draw):
    operation = draw(st.sampled_from(["idphoto", "clothing-segmentation", "", "unknown"]))
    parts = draw(st.lists(segment, min_size=1, max_size=4))
    pad = draw(long_tail)
    rel = (operation + "/" if operation else "") + "/".join(parts) + "x" * pad
    key = "incoming/" + rel
    while len(key.encode()) > S3_KEY_MAX_BYTES:
        key = key[:-1]
    if key.endswith("/") or key == "incoming/":
        key += "f"
        while len(key.encode()) > S3_KEY_MAX_BYTES:
            key = key[:-2] + "f"
    return key


@settings(max_examples=400, deadline=None)
@given(st.lists(input_keys(), min_size=2, max_size=6, unique=True))
def test_output_keys_fit_and_are_one_to_one(keys):
    owners: dict[str, str] = {}
    for key in keys:
        path = parse_job_path(key)
        if path is None:
            continue
        for out in output_keys(key):
            assert len(out.encode()) <= S3_KEY_MAX_BYTES, (key, out)
            assert owners.setdefault(out, key) == key, f"{key!r} and {owners[out]!r} share {out!r}"


def test_keys_differing_only_in_extension_at_every_length():
    for pad, ext in itertools.product(range(990, 1002), (".jpg", ".png")):
        key = "incoming/idphoto/" + "p" * (pad - 17) + ext
        if len(key.encode()) <= S3_KEY_MAX_BYTES:
            other = key[: -len(ext)] + (".png" if ext == ".jpg" else ".jpg")
            assert set(output_keys(key)).isdisjoint(output_keys(other))
