"""What AWS bills, as the benchmark prices a run and the backfill's dry run prices a batch: published us-east-1
prices, and one image's usage in a drop as the burst benchmark measures it (`make bench`)."""

from __future__ import annotations

# Published us-east-1 prices (USD), keyed as the counts they price: Step Functions Standard per state transition;
# Lambda per request and per GB-second on arm64 (INIT included: Lambda bills it since August 2025); DynamoDB
# on-demand per write / read request unit; S3 per PUT-class / GET-class request; S3 data transfer out to the
# internet per GB (the API fetching the inputs); CloudWatch Logs ingestion per GB; X-Ray per trace recorded.
PRICES = {
    "state_transitions": 0.025 / 1000,
    "lambda_requests": 0.20 / 1_000_000,
    "lambda_gb_s": 0.0000133334,
    "dynamodb_write": 0.625 / 1_000_000,
    "dynamodb_read": 0.125 / 1_000_000,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "egress_gb": 0.09,
    "log_gb": 0.50,
    "xray_traces": 5.0 / 1_000_000,
}

# One image's usage in a drop, but for the bytes the API fetches (the image's own size): the 2,000-upload drop on
# the local stack (`python -m bench --n 2000 --qps 20 --time-scale 0.05`; Lambda's seconds there are a busy
# emulator's, so GB-seconds are an upper estimate), plus a backfill's own item: a child execution's states, one
# invocation, its reads of the object and the key's record, and its tally counts.
PER_IMAGE = {
    "state_transitions": 8.63 + 3,
    "lambda_requests": 4.21 + 1,
    "lambda_gb_s": 3.64 + 0.3,
    "dynamodb_write": 19.4 + 2,
    "dynamodb_read": 11.1,
    "s3_put": 5.8,
    "s3_get": 5.05 + 3,
    "log_gb": 4.4e-6,
    "xray_traces": 4.21 + 1,
}


def aws_cost(images: int, image_bytes: int) -> dict[str, float]:
    """USD by line for `images` images of `image_bytes` in all, and the total."""
    usage = {name: per * images for name, per in PER_IMAGE.items()} | {"egress_gb": image_bytes / 1e9}
    lines = {name: round(n * PRICES[name], 4) for name, n in usage.items()}
    return lines | {"total": round(sum(lines.values()), 2)}
