"""State machine step: write the failure record of a job that ended in any failure path."""

from picwish.runtime import step_handler
from picwish.steps import record_failure_step

lambda_handler = step_handler(record_failure_step)
