"""EventBridge target: an execution that FAILED, TIMED_OUT or was ABORTED still gets its failure record."""

from picwish_pipeline import metrics
from picwish_pipeline.backstop import backstop_step
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(backstop_step, measure=metrics.of_outcome)
