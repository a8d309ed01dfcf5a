"""Starting an execution of the pipeline: a throttled StartExecution (a drop past the account's start quota) is
waited out with full-jitter backoff, within the time the calling step can spare."""

from __future__ import annotations

from botocore.exceptions import ClientError

from picwish_visual.retry import Backoff

from .services import Services

START_THROTTLED = {"ThrottlingException", "TooManyRequestsException"}
START_BUDGET_S = 40.0  # of a step's 60 s timeout: time left to write a record if the start never gets through
START_BACKOFF_S, START_BACKOFF_CAP_S = 0.25, 5.0


def start_admitted(svc: Services, **params: str) -> None:
    """StartExecution, retried while throttled for up to START_BUDGET_S; any other error, or a throttle past the
    budget, is raised (ExecutionAlreadyExists too: the caller knows what a start made before means)."""
    give_up_at = svc.clock() + START_BUDGET_S
    backoff = Backoff(START_BACKOFF_S, START_BACKOFF_CAP_S, svc.jitter)
    attempt = 0
    while True:
        try:
            svc.sfn.start_execution(**params)
            return
        except ClientError as exc:
            delay = backoff.delay(attempt)
            if exc.response["Error"]["Code"] not in START_THROTTLED or svc.clock() + delay > give_up_at:
                raise
        svc.sleep(delay)
        attempt += 1
