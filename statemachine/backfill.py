"""The backfill machine, described in Python like the pipeline's: a Distributed Map over a listing of the input
bucket whose item step decides each image (picwish_pipeline.backfill) and starts its job on the pipeline machine.
`python -m statemachine.backfill` writes `backfill.asl.json`; a test fails when the two differ.

Each item runs its job to the end (StartExecution .sync:2), so the map's concurrency (`jobs` in the input) is
the number of the backfill's jobs in flight; their creates wait in the backfill's create lane, so it never
decides how fast credits are spent."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from statemachine.definition import KEY_BUSY, LAMBDA_FAILED, LAMBDA_THROTTLED

ASL_PATH = Path(__file__).with_name("backfill.asl.json")
RUNS = ("start", "rerun")  # picwish_pipeline.backfill's actions that run a job
START_THROTTLED = ("StepFunctions.ThrottlingException", "StepFunctions.ExecutionLimitExceededException")
RESULTS_PREFIX = "backfill/"  # in the output bucket: each run's per-item outcomes, as Step Functions writes them


def definition() -> dict[str, Any]:
    images = {
        "Type": "Map",
        "Comment": "Every object under the prefix, as S3 lists it; the input names the bucket, the prefix, whether "
        "images with a result are processed again, and how many jobs may run at once.",
        "ItemReader": {
            "Resource": "arn:aws:states:::s3:listObjectsV2",
            "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"},
        },
        "ItemSelector": {"bucket.$": "$.bucket", "key.$": "$$.Map.Item.Value.Key", "reprocess.$": "$.reprocess"},
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Decide",
            "States": _item(),
        },
        "MaxConcurrencyPath": "$.jobs",
        # An item that fails after its retries is counted in the Map Run and written to the results; the others
        # go on (a job's own failure is not one: its record says why).
        "ToleratedFailurePercentage": 100.0,  # a float: moto's ASL grammar reads an integer here as an error
        "ResultWriter": {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": "${OutputBucket}", "Prefix": RESULTS_PREFIX.rstrip("/")},
        },
        "End": True,
    }
    return {
        "Comment": "A backfill: every image already under a prefix of incoming/, judged and run on the pipeline.",
        "StartAt": "Images",
        "States": {"Images": images},
    }


def _item() -> dict[str, Any]:
    """One object: decided (and judged) by the backfill function, then its job run to its end on the pipeline
    machine — so the map's concurrency is the backfill's jobs in flight."""
    return {
        "Decide": {
            "Type": "Task",
            "Resource": "${BackfillFunctionArn}",
            "TimeoutSeconds": 60,
            "Retry": copy.deepcopy([LAMBDA_THROTTLED, LAMBDA_FAILED, KEY_BUSY]),
            "Next": "Runs?",
        },
        "Runs?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.action", "StringEquals": action, "Next": "RunJob"} for action in RUNS],
            "Default": "Skipped",
        },
        "RunJob": {
            "Type": "Task",
            "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": "${PipelineStateMachineArn}", "Name.$": "$.name", "Input.$": "$.input"},
            "ResultSelector": {"status.$": "$.Status"},
            "Retry": [{**copy.deepcopy(LAMBDA_THROTTLED), "ErrorEquals": list(START_THROTTLED)}],
            "Catch": [
                # Its upload's event (or another backfill) started it first: that execution is its job.
                {"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"], "Next": "Skipped"},
                # The job ended failed: its failure record says why; the backfill goes on.
                {"ErrorEquals": ["States.TaskFailed"], "Next": "JobEnded"},
            ],
            "Next": "JobEnded",
        },
        "Skipped": {"Type": "Succeed"},
        "JobEnded": {"Type": "Succeed"},
    }


def render() -> str:
    return json.dumps(definition(), indent=2) + "\n"


if __name__ == "__main__":
    ASL_PATH.write_text(render())
    sys.stdout.write(f"wrote {ASL_PATH}\n")
