"""The docs' curl examples, verbatim but for the host, key and files, run with curl against the mock process."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from tests.support import images

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")

# (operation, the -F arguments of each example in the operation's doc)
EXAMPLES = [
    ("retouching-collection", ["sync=0", "image_url=IMAGE_URL", "mask_url=MASK_URL"]),
    ("retouching-collection", ["sync=0", "image_file=@IMAGE_FILE", "mask_file=@MASK_FILE"]),
    ("retouching-collection", ["sync=1", "image_url=IMAGE_URL", "mask_url=MASK_URL"]),
    ("correction", ["sync=0", "image_url=IMAGE_URL"]),
    ("correction", ["sync=0", "image_file=@IMAGE_FILE"]),
    ("correction", ["sync=1", "image_url=IMAGE_URL"]),
    ("inpaint", ["sync=0", "image_url=IMAGE_URL", "mask_url=MASK_URL"]),
    ("inpaint", ["sync=0", "image_file=@IMAGE_FILE", "mask_file=@MASK_FILE"]),
    ("inpaint", ["sync=1", "image_url=IMAGE_URL", 'rectangles=[{"x":0,"y":0,"width":100,"height":100}]']),
    ("clothing-segmentation", ["sync=0", "image_url=IMAGE_URL"]),
    ("clothing-segmentation", ["sync=0", "image_file=@IMAGE_FILE"]),
    ("clothing-segmentation", ["sync=1", "image_url=IMAGE_URL"]),
    ("idphoto", ["sync=0", "image_url=IMAGE_URL"]),
    ("idphoto", ["sync=0", "image_file=@IMAGE_FILE"]),
    ("idphoto", ["sync=1", "image_url=IMAGE_URL"]),
]


def curl(*args: str) -> dict:
    out = subprocess.run(["curl", "-k", "-s", *args], capture_output=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.mark.parametrize(("operation", "fields"), EXAMPLES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(EXAMPLES)])
def test_doc_example(picwish_mock, files, tmp_path, operation, fields):
    image = images.portrait(300, 240, fmt="PNG")
    mask = images.mask(300, 240)
    (tmp_path / "image.png").write_bytes(image)
    (tmp_path / "mask.png").write_bytes(mask)
    values = {
        "IMAGE_URL": files.add(f"/doc/{operation}/image.png", image),
        "MASK_URL": files.add(f"/doc/{operation}/mask.png", mask),
        "IMAGE_FILE": str(tmp_path / "image.png"),
        "MASK_FILE": str(tmp_path / "mask.png"),
    }
    args = []
    for field in fields:
        for placeholder, value in values.items():
            field = field.replace(placeholder, value)
        args += ["-F", field]
    endpoint = f"{picwish_mock.url}/api/tasks/visual/{operation}"
    key = ["-H", f"X-API-KEY: {picwish_mock.api_key}"]
    body = curl(endpoint, *key, *args)
    assert (body["status"], body["message"]) == (200, "success")
    data = body["data"]
    deadline = time.monotonic() + 30
    while data.get("state") != 1:
        assert time.monotonic() < deadline and data.get("state", 0) >= 0, data
        time.sleep(0.05)
        data = curl(f"{endpoint}/{data['task_id']}", *key)["data"]
    links = [data["image"]] if "image" in data else list(data["class_masks"].values())
    for link in links:
        assert subprocess.run(["curl", "-s", "-f", "-o", "/dev/null", link], timeout=30).returncode == 0
