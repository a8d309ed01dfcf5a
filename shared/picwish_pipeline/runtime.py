"""Lambda wiring: services built once per cold start from the function's environment, and the one handler
wrapper (Powertools Logger keys, Tracer, EMF metrics) every pipeline handler shares."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, cast

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from .config import PipelineSettings
from .metrics import Measure
from .secrets import get_api_key
from .services import Services


class LazyClient:
    """A boto3 client (or Powertools provider) made on its first use: each function builds only the clients its
    step calls, and each costs tens of milliseconds of cold start."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


def build_services(settings: PipelineSettings | None = None) -> Services:
    settings = settings or PipelineSettings.from_env()
    secrets = cast(
        parameters.SecretsProvider,
        LazyClient(lambda: parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))),
    )
    return Services(
        settings=settings,
        s3=LazyClient(lambda: boto3.client("s3", config=Config(signature_version="s3v4"))),
        sfn=LazyClient(lambda: boto3.client("stepfunctions")),
        dynamodb=LazyClient(lambda: boto3.client("dynamodb")),
        api_key=lambda refresh: get_api_key(settings.api_key_secret, refresh=refresh, provider=secrets),
    )


def step_handler(
    step: Callable[[Services, Any], Any],
    *,
    parse: Callable[[dict], Any] | None = None,
    measure: Callable[[dict], list[Measure]] | None = None,
) -> Callable:
    """A Lambda handler that logs with the job's key, execution and task id (Powertools Logger with the Lambda
    context), publishes what `measure` reads from the result as EMF metrics with the operation as dimension
    and, when the deployment asks for it, traces each call. The event is turned into the step's typed input by
    `parse`, and its output back into a dict: the only place dicts and the steps' dataclasses meet."""
    logger, metrics = Logger(), Metrics()
    services = build_services()  # once per cold start, from this function's environment

    def handler(event: dict, context: Any) -> dict:
        job = event.get("job") or {}
        operation = str(job.get("operation", "none"))
        logger.append_keys(
            object_key=(job.get("upload") or {}).get("key"),
            execution=event.get("execution"),
            task_id=(event.get("create") or {}).get("task_id"),
            operation=job.get("operation"),
        )
        output = step(services, parse(event) if parse is not None else event)
        result = output.to_dict() if hasattr(output, "to_dict") else output
        measures = measure(result) if measure is not None else []
        for m in measures:
            metrics.add_metric(name=m.name, unit=MetricUnit(m.unit), value=m.value)
            for name, value in m.dimensions:
                metrics.add_dimension(name=name, value=value)
        if measures:
            metrics.add_dimension(name="operation", value=operation)
        # What comes next is logged too: when a job will call the API again is what an operator asks first, and
        # whether that call is a reading that gives its slot up to one that cannot wait (`spare`).
        shown = ("status", "phase", "state", "progress", "slot_at", "wait_s", "spare")
        logger.info("step done", extra={k: result[k] for k in shown if result.get(k) is not None})
        return result

    wrapped: Callable = functools.wraps(step)(handler)
    if services.settings.trace_calls:
        wrapped = _traced(wrapped)
    if measure is not None:  # flushed once per invocation; without metrics nothing to flush
        wrapped = metrics.log_metrics(wrapped)
    return logger.inject_lambda_context(wrapped, clear_state=True)


def _traced(handler: Callable) -> Callable:
    """X-Ray subsegments for the handler and the calls it makes. Lambda's active tracing records each invocation
    and its INIT without this; the X-Ray SDK (imported by the Tracer) costs ~150 ms of every cold start, so it
    loads only when TRACE_CALLS asks for it. Only what this function can call is patched: boto3 always, requests
    when the step imported it (create, poll, finalize) — patching every library X-Ray knows imports each one."""
    from aws_lambda_powertools import Tracer

    patched = ("botocore", "requests") if "requests" in sys.modules else ("botocore",)
    return Tracer(patch_modules=patched).capture_lambda_handler(handler)
