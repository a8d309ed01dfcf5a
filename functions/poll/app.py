"""State machine step: poll the task once in a reserved QPS slot and say when to poll next."""

from picwish_pipeline import metrics
from picwish_pipeline.payloads import StepInput
from picwish_pipeline.poll import poll_step
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(poll_step, parse=StepInput.from_dict, measure=metrics.of_poll)
