"""State machine step: create the API task in a reserved QPS slot (or say how long to wait for one)."""

from picwish_pipeline import metrics
from picwish_pipeline.create import create_step
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(create_step, parse=StepInput.from_dict, measure=metrics.of_create)
