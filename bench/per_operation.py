"""One upload of each operation through the pipeline on the mock: API calls, state transitions and Lambda
invocations per image, as JSON.

    .venv/bin/python -m bench.per_operation [--qps 2] [--time-scale 0.05]
"""

from __future__ import annotations

import argparse
import json
import sys

from offline.harness import build
from offline.samples import encode, mask, portrait, product
from picwish_pipeline.uploads import parse_job_path

UPLOADS = {
    "idphoto": (
        "incoming/idphoto/bench/portrait.jpg",
        lambda: encode(portrait(), "JPEG"),
        {"size": "295x413", "format": "jpg"},
    ),
    "correction": ("incoming/correction/bench/doc.jpg", lambda: encode(portrait(), "JPEG"), {"type": "2"}),
    "inpaint": ("incoming/inpaint/bench/shoe.png", lambda: encode(product(80, 60), "PNG"), {}),
    "retouching-collection": (
        "incoming/retouching-collection/bench/bag.png",
        lambda: encode(product(80, 60), "PNG"),
        {},
    ),
    "clothing-segmentation": (
        "incoming/clothing-segmentation/bench/look.jpg",
        lambda: encode(portrait(), "JPEG"),
        {"class_type": "4"},
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qps", default="2")
    parser.add_argument("--time-scale", default="0.05")
    args = parser.parse_args()
    results_out, sys.stdout = sys.stdout, sys.stderr  # Lambda logs and metrics go to stderr; the JSON alone to stdout
    pipeline, stack = build(
        ("--qps", args.qps, "--time-scale", args.time_scale), {"ApiQps": args.qps, "WaitScale": args.time_scale}
    )
    with stack:
        pipeline.upload("masks/inpaint/bench/shoe.png", encode(mask((80, 60), (20, 15, 59, 44)), "PNG"))
        pipeline.upload("masks/retouching-collection/bench/bag.png", encode(mask((80, 60), (20, 15, 59, 44)), "PNG"))
        figures = {}
        for operation, (key, make, metadata) in UPLOADS.items():
            pipeline.upload(key, make(), metadata)
            kind, record = pipeline.record(key, timeout_s=120)
            name = pipeline.execution_for(key)
            figures[operation] = {
                "outcome": kind,
                "api_calls": record.get("api_calls"),
                "polls": record.get("polls"),
                **pipeline.execution_stats(name),
                "result_keys": sorted(record.get("outputs", {}).values())
                if kind == "result"
                else [parse_job_path(key).failure_key],
            }
        report = {"qps": float(args.qps), "time_scale": float(args.time_scale), "per_operation": figures}
        print(json.dumps(report, indent=2), file=results_out)


if __name__ == "__main__":
    main()
