"""One QPS budget shared by every execution: call slots reserved in DynamoDB.

Time is cut into slots `1 / (qps × headroom)` seconds apart; each slot holds at most one API call. A step
reserves the first free slot at or after the time it wants to call (a create: now; a poll: when the task is
likely done) and the state machine waits until then. Reserving ahead, rather than retrying on 429, keeps the
budget busy without a retry storm, and slots left free by a future reservation stay usable by others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

PARTITION = "api-slots"


class NoSlotError(RuntimeError):
    """Every attempt to reserve lost a race; the step is retried by the state machine."""


@dataclass
class SlotLimiter:
    table_name: str
    qps: float
    client: object  # a boto3 DynamoDB client
    headroom: float = 0.92  # calls are spread over 92 % of the budget, so a slightly late call never makes a 429
    clock: Callable[[], float] = time.time
    ttl_s: int = 24 * 3600
    page: int = 64
    attempts: int = 16

    @property
    def spacing(self) -> float:
        return 1.0 / (self.qps * self.headroom)

    @property
    def tolerance_s(self) -> float:
        """How late a call may still go out in its slot. The `qps` calls after it are `qps × spacing` =
        `1 / headroom` seconds later; any more lateness could put qps + 1 calls into one second."""
        return (1.0 / self.headroom - 1.0) * 0.8

    def reserve(self, not_before: float | None = None) -> float:
        """Reserve one call slot; returns the Unix time at which the call may be made."""
        start = max(self.clock(), not_before or 0.0)
        index = math.ceil(start / self.spacing)
        for _ in range(self.attempts):
            taken = self._taken_from(index)
            while index in taken:
                index += 1
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item={
                        "pk": {"S": PARTITION},
                        "sk": {"N": str(index)},
                        "expires_at": {"N": str(int(index * self.spacing) + self.ttl_s)},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                )
                return index * self.spacing
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                index += 1  # lost the race for this slot: the next one is the best candidate
        raise NoSlotError(f"no slot reserved after {self.attempts} attempts")

    def _taken_from(self, index: int) -> set[int]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND sk >= :s",
            ExpressionAttributeValues={":p": {"S": PARTITION}, ":s": {"N": str(index)}},
            ProjectionExpression="sk",
            Limit=self.page,
        )
        return {int(item["sk"]["N"]) for item in response.get("Items", [])}
