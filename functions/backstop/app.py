"""EventBridge target: an execution that FAILED, TIMED_OUT or was ABORTED still gets its failure record."""

from picwish.runtime import step_handler
from picwish.steps import backstop_step

lambda_handler = step_handler(backstop_step)
