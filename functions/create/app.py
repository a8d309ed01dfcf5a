"""State machine step: create the API task in a reserved QPS slot (or say how long to wait for one)."""

from picwish.runtime import step_handler
from picwish.steps import create_step

lambda_handler = step_handler(create_step, metric_keys=("api_calls", "throttles"))
