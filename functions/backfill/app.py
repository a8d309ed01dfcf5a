"""Backfill machine step: one image already in S3 — start its job, run it again, or say why it is skipped."""

from picwish_pipeline.backfill import item_step
from picwish_pipeline.runtime import step_handler

lambda_handler = step_handler(item_step)
