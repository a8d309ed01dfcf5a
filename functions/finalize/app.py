"""State machine step: download every result and write them with result.json to the output bucket."""

from picwish.runtime import step_handler
from picwish.steps import finalize_step

lambda_handler = step_handler(finalize_step)
