"""The pipeline end to end in one process: template.yaml in moto, the ASL run by moto's interpreter, the real
handlers in-process, the mock API in its own process."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.functional.pipeline_stack import build
from tests.support import images


@pytest.fixture(scope="module")
def pipeline():
    built, stack = build(("--qps", "5", "--time-scale", "0.01"), {"ApiQps": "5", "WaitScale": "0.01"})
    with stack:
        yield built


def test_idphoto_upload_ends_in_a_result(pipeline):
    key = "incoming/idphoto/people/me 1.jpg"
    pipeline.upload(key, images.portrait(120, 90), {"size": "150x200", "format": "jpg", "bg-color": "3366CC"})
    kind, record = pipeline.record(key)
    assert kind == "result", record
    assert record["options"] == {"size": "150x200", "format": "jpg", "bg_color": "3366CC"}
    image = Image.open(io.BytesIO(pipeline.output(record["outputs"]["image"])))
    assert (image.format, image.size) == ("JPEG", (150, 200))
    assert record["outputs"]["image"] == "results/idphoto/people/me 1/image.jpg"
