"""State machine step: download every result and write them with result.json to the output bucket."""

from picwish_pipeline import metrics
from picwish_pipeline.finalize import finalize_step
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(finalize_step, parse=StepInput.from_dict, measure=metrics.of_outcome)
