"""S3 trigger: every record of the event is validated and, if sound, starts its own execution."""

from picwish_pipeline import metrics
from picwish_pipeline.runtime import step_handler
from picwish_pipeline.submit import submit_event

lambda_handler = step_handler(submit_event, measure=metrics.of_submit)
