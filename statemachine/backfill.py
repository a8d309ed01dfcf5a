"""The backfill machine, described in Python like the pipeline's: a Distributed Map over a listing of the input
bucket whose item step decides each image (picwish_pipeline.backfill) and starts its job on the pipeline machine.
`python -m statemachine.backfill` writes `backfill.asl.json`; a test fails when the two differ.

The map only admits: each job waits for its create in the pipeline's own create lane, so the map's concurrency
bounds how fast images are judged, never how fast credits are spent."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from statemachine.definition import KEY_BUSY, LAMBDA_FAILED, LAMBDA_THROTTLED

ASL_PATH = Path(__file__).with_name("backfill.asl.json")
ITEM_CONCURRENCY = 10  # items judged at once: each is a few S3 reads and a StartExecution
RESULTS_PREFIX = "backfill/"  # in the output bucket: each run's per-item outcomes, as Step Functions writes them


def definition() -> dict[str, Any]:
    decide = {
        "Type": "Task",
        "Resource": "${BackfillFunctionArn}",
        "TimeoutSeconds": 60,
        "Retry": copy.deepcopy([LAMBDA_THROTTLED, LAMBDA_FAILED, KEY_BUSY]),
        "End": True,
    }
    images = {
        "Type": "Map",
        "Comment": "Every object under the prefix, as S3 lists it; the input names the bucket, the prefix and "
        "whether images with a result are processed again.",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
        },
        "ItemSelector": {"bucket.$": "$.bucket", "key.$": "$$.Map.Item.Value.Key", "reprocess.$": "$.reprocess"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Decide",
            "States": {"Decide": decide},
        },
        "MaxConcurrency": ITEM_CONCURRENCY,
        # An item that fails after its retries is counted in the Map Run and written to the results; the others
        # go on (nothing of it was paid: the failure is before or at its job's start).
        "ToleratedFailurePercentage": 100.0,  # a float: moto's ASL grammar reads an integer here as an error
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "${OutputBucket}", "Prefix": RESULTS_PREFIX.rstrip("/")},
        },
        "End": True,
    }
    return {
        "Comment": "A backfill: every image already under a prefix of incoming/, judged and admitted to the pipeline.",
        "StartAt": "Images",
        "States": {"Images": images},
    }


def render() -> str:
    return json.dumps(definition(), indent=2) + "\n"


if __name__ == "__main__":
    ASL_PATH.write_text(render())
    sys.stdout.write(f"wrote {ASL_PATH}\n")
