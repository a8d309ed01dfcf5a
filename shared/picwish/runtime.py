"""Lambda wiring: services built once per cold start from the function's environment, and the one handler
wrapper (Powertools Logger keys, Tracer, EMF metrics) every pipeline handler shares."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.base import MetricManager
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from .config import ENV_METRICS_NAMESPACE, ENV_SERVICE_NAME, PipelineSettings
from .secrets import get_api_key
from .steps import Services


def build_services(settings: PipelineSettings | None = None) -> Services:
    settings = settings or PipelineSettings.from_env()
    secrets = parameters.SecretsProvider(boto3_client=boto3.client("secretsmanager"))
    return Services(
        settings=settings,
        s3=boto3.client("s3", config=Config(signature_version="s3v4")),
        sfn=boto3.client("stepfunctions"),
        dynamodb=boto3.client("dynamodb"),
        api_key=lambda refresh: get_api_key(settings.api_key_secret, refresh=refresh, provider=secrets),
    )


def step_handler(step: Callable[[Any, dict], dict], *, metric_keys: tuple[str, ...] = ()) -> Callable:
    """A Lambda handler that logs with the job's key, execution and task id, and emits metrics of the result.

    Safe for concurrent invocations in one process (the local stack runs every function in one interpreter):
    Powertools keeps a Logger's appended keys and a Metrics object's metric set per process, so one invocation's
    keys showed up in another's log lines and two flushes raced (a step failed on "dictionary changed size during
    iteration"). Keys are per thread here and each invocation flushes a metric set of its own; in Lambda, with one
    invocation per process, the output is the same.
    """
    logger, tracer = Logger(), Tracer()
    services = build_services()  # once per cold start, from this function's environment
    # Read with the rest of the environment at cold start (Powertools would read them again at each flush).
    namespace, service = os.environ.get(ENV_METRICS_NAMESPACE), os.environ.get(ENV_SERVICE_NAME)
    cold = [True]

    @tracer.capture_lambda_handler
    @functools.wraps(step)
    def handler(event: dict, context: Any) -> dict:
        job = event.get("job") or {}
        operation = str(job.get("operation", "none"))
        logger.thread_safe_append_keys(
            function_name=getattr(context, "function_name", None),
            function_request_id=getattr(context, "aws_request_id", None),
            cold_start=cold[0],
            object_key=(job.get("upload") or {}).get("key"),
            execution=event.get("execution"),
            task_id=(event.get("create") or {}).get("task_id"),
            operation=job.get("operation"),
        )
        cold[0] = False
        try:
            result = step(services, event)
            _emit_metrics(result, metric_keys, namespace, service, operation)
            logger.info("step done", extra={"status": result.get("status"), "state": result.get("state")})
            return result
        finally:
            logger.thread_safe_clear_keys()

    return handler


def _emit_metrics(result: dict, keys: tuple[str, ...], namespace: str | None, service: str | None, operation: str):
    """One EMF line per invocation from a metric set of its own (not the per-process one of `Metrics`)."""
    emf = MetricManager(namespace=namespace, service=service)
    for key in keys:
        value = result.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            emf.add_metric(name=key, unit=MetricUnit.Count, value=value)
    if emf.metric_set:
        emf.add_dimension(name="operation", value=operation)
        emf.flush_metrics()
