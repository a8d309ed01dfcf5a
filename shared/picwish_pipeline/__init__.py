"""The pipeline: the steps the Lambda functions run (submit, create, poll, finalize, record a failure, backstop),
their QPS slots, storage and records, on top of the `picwish` API client."""
