"""State machine step: write the failure record of a job that ended in any failure path."""

from picwish_pipeline import metrics
from picwish_pipeline.failures import record_failure_step
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(record_failure_step, parse=StepInput.from_dict, measure=metrics.of_outcome)
