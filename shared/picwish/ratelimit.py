"""One QPS budget shared by every execution: call slots reserved in DynamoDB.

Time is cut into slots `1 / (qps × headroom)` seconds apart; each slot holds at most one API call. A step
reserves the first free slot at or after the time it wants to call and the state machine waits until then.
Reserving ahead, rather than retrying on 429, keeps the budget busy without a retry storm.

Slots are the plan; send times are what the API counts. Shortly before its slot a step reads when the calls
before it really went out (`ready_at`) and announces its own (`mark_called`): a call that went out late moves
the next ones a little later — the headroom absorbs that within a few slots — instead of making one a 429.

Polls come first: a poll reserves its slot as soon as its create is done (where the task is likely finished),
while a create may only take a slot within a short horizon. Creates that find none wait in a ticket queue for
a time estimated from how many creates are ahead of them, so a burst of uploads neither starves the polls of
tasks already paid for (latency) nor wakes up over and over (cost).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

PARTITION = "api-slots"
QUEUE = "create-queue"  # sk 0: tickets handed out; sk 1: creates admitted to a slot


@dataclass
class SlotLimiter:
    table_name: str
    qps: float
    client: object  # a boto3 DynamoDB client
    headroom: float = 0.95  # calls are spread over 95 % of the budget: a late call's successors catch up
    max_slip_s: float = 0.5  # how late a call may still go in its slot; later, it takes a new one
    margin_s: float = 0.03  # the spread of the time from send to arrival at the API (p99 on the local stack: 30 ms)
    clock: Callable[[], float] = time.time
    ttl_s: int = 24 * 3600
    page: int = 64

    @property
    def spacing(self) -> float:
        return 1.0 / (self.qps * self.headroom)

    def reserve(self, not_before: float | None = None, horizon_s: float | None = None) -> float | None:
        """Reserve one call slot; returns the Unix time at which the call may be made. With a horizon, only a
        slot within `horizon_s` of the start is taken, and None means there was none."""
        start = max(self.clock(), not_before or 0.0)
        index = math.ceil(start / self.spacing)
        # No attempt limit: every pass moves `index` forward (past a page of taken slots, or past a slot lost to
        # another step), and taken slots are finite, so a backlog only makes the slot later — never an error.
        while True:
            taken = self._taken_from(index)
            while index in taken:
                index += 1
            if horizon_s is not None and index * self.spacing > start + horizon_s:
                return None
            if len(taken) == self.page and index > max(taken):
                continue  # the whole page was taken: look at the next one before trying a slot
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

    def _taken_from(self, index: int) -> set[int]:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND sk >= :s",
            ExpressionAttributeValues={":p": {"S": PARTITION}, ":s": {"N": str(index)}},
            ProjectionExpression="sk",
            Limit=self.page,
        )
        return {int(item["sk"]["N"]) for item in response.get("Items", [])}

    def missed(self, slot_at: float, at: float | None = None) -> bool:
        """Whether a call going out at `at` (default: now) is too late for its slot and must take a new one."""
        return (self.clock() if at is None else at) - slot_at > self.max_slip_s

    def ready_at(self, slot_at: float) -> float:
        """When the call reserved for `slot_at` may go out: its slot (or now, when later) unless, by the recorded
        send times of the other calls (not their slots), that would put more than `qps` calls into one second."""
        at = max(self.clock(), slot_at)
        mine = round(slot_at / self.spacing)
        low = math.floor((at - 1 - self.max_slip_s - self.margin_s) / self.spacing)
        high = math.ceil(at / self.spacing) + 1
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":p": {"S": PARTITION}, ":a": {"N": str(low)}, ":b": {"N": str(high)}},
            ProjectionExpression="sk, called_at",
            ConsistentRead=True,
        )
        sent = sorted(
            float(i["called_at"]["N"])
            for i in response.get("Items", [])
            if "called_at" in i and int(i["sk"]["N"]) != mine and float(i["called_at"]["N"]) > at - 1 - self.margin_s
        )
        others = max(0, math.ceil(self.qps) - 1)  # calls besides this one a second may hold
        if len(sent) <= others:
            return at
        return max(at, sent[-(others + 1)] + 1 + self.margin_s)

    def mark_called(self, slot_at: float, sent_at: float) -> None:
        """Record when the slot's call goes (or went) out, for the calls after it to judge their second by."""
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": PARTITION}, "sk": {"N": str(round(slot_at / self.spacing))}},
            UpdateExpression="SET called_at = :t",
            ExpressionAttributeValues={":t": {"N": repr(sent_at)}},
        )

    # -- the create queue ---------------------------------------------------------------------------------

    def take_ticket(self, owner: str | None = None) -> int:
        """A place in the create queue; with an owner (the execution), the same place on every retry."""
        if owner is None:
            return self._add(0)
        key = {"pk": {"S": f"ticket#{owner}"}, "sk": {"N": "0"}}
        item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
        if item:
            return int(item["n"]["N"])
        ticket = self._add(0)
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={**key, "n": {"N": str(ticket)}, "expires_at": {"N": str(int(self.clock()) + self.ttl_s)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)["Item"]
            return int(item["n"]["N"])
        return ticket

    def admitted(self) -> int:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": QUEUE}, "sk": {"N": "1"}}, ConsistentRead=True
        ).get("Item")
        return int(item["n"]["N"]) if item else 0

    def admit(self) -> int:
        return self._add(1)

    def _add(self, sk: int) -> int:
        response = self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": QUEUE}, "sk": {"N": str(sk)}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["n"]["N"])

    def queue_wait(self, ticket: int, admitted: int, window_s: float = 2.0) -> float:
        """Seconds until about `ticket`'s turn: 0 when it is among the creates that fit in the next `window_s`,
        else the creates ahead of those at the rate creates get slots (about half of them: every image needs
        a create and at least one poll)."""
        ahead = max(0, ticket - admitted - 1)
        front = max(1, int(window_s / self.spacing))
        return max(0, ahead - front + 1) * self.spacing * 2
