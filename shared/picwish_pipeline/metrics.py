"""The pipeline's own CloudWatch metrics (EMF, in POWERTOOLS_METRICS_NAMESPACE): each name once, and what each
step's result says about them. template.yaml's dashboard and alarms use these names, and a test checks that every
name they use is one this module emits. Counts of a job are emitted once, when its part ends, so sums over time
are totals (a poll's running count, emitted at every poll, would add up to nonsense)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STARTED = "started"  # uploads that became jobs
DUPLICATE = "duplicate"  # S3 events delivered again for a job already started
REJECTED = "rejected"  # uploads refused by submit (each has a failure record)
API_CALLS = "api_calls"  # a job's API calls, creates and polls, 429s included
THROTTLES = "throttles"  # a job's calls answered 429
POLLS = "polls"  # a job's polls
CREATE_WAIT_S = "create_wait_s"  # how far ahead a waiting create's slot is: the create queue, in seconds
RESULTS = "results"  # jobs that ended in result.json
FAILURE_RECORDS = "failure_records"  # jobs that ended in a failure record after starting (dimension: reason)
PROCESSING_S = "processing_s"  # the task's time at the API, by its own (whole-second) stamps
OVERHEAD_S = "overhead_s"  # from the API's "completed" stamp to the result written
CREDIT_BUDGET_USED = "credit_budget_used"  # percent of the 24-hour credit budget spent, as a held create saw it

NAMES = frozenset(
    {
        STARTED,
        DUPLICATE,
        REJECTED,
        API_CALLS,
        THROTTLES,
        POLLS,
        CREATE_WAIT_S,
        RESULTS,
        FAILURE_RECORDS,
        PROCESSING_S,
        OVERHEAD_S,
        CREDIT_BUDGET_USED,
    }
)


@dataclass(frozen=True)
class Measure:
    name: str
    value: float
    unit: str = "Count"  # or "Seconds"
    dimensions: tuple[tuple[str, str], ...] = ()


def of_submit(result: dict[str, Any]) -> list[Measure]:
    return [Measure(name, result[name]) for name in (STARTED, DUPLICATE, REJECTED) if result.get(name)]


def of_create(result: dict[str, Any]) -> list[Measure]:
    budget = [Measure(CREDIT_BUDGET_USED, result["budget_used"], "Percent")] if "budget_used" in result else []
    if result.get("status") == "wait" and result.get("wait_s") is not None:
        return [Measure(CREATE_WAIT_S, result["wait_s"], "Seconds"), *budget]
    if result.get("status") == "failed":  # the job ends here: its calls are all the create's
        return [Measure(API_CALLS, result.get("api_calls", 0)), Measure(THROTTLES, result.get("throttles", 0))]
    return budget


def of_poll(result: dict[str, Any]) -> list[Measure]:
    if result.get("phase") in (None, "processing"):
        return []
    # Polling ended (done, failed or timed out): the poll carries the job's counts, the create's included.
    return [
        Measure(API_CALLS, result.get("api_calls") or 0),
        Measure(THROTTLES, result.get("throttles") or 0),
        Measure(POLLS, result.get("polls") or 0),
    ]


def of_outcome(result: dict[str, Any]) -> list[Measure]:
    """Finalize, record-failure and the backstop: how the job ended."""
    if result.get("status") == "failed":
        return [Measure(FAILURE_RECORDS, 1, dimensions=(("reason", str(result.get("reason"))),))]
    if result.get("status") != "succeeded":
        return []
    measures = [Measure(RESULTS, 1)]
    for name in (PROCESSING_S, OVERHEAD_S):
        if result.get(name) is not None:
            measures.append(Measure(name, result[name], "Seconds"))
    return measures
