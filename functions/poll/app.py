"""State machine step: poll the task once in a reserved QPS slot and say when to poll next."""

from picwish.runtime import step_handler
from picwish.steps import poll_step

lambda_handler = step_handler(poll_step, metric_keys=("polls",))
