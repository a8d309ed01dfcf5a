"""One QPS budget shared by every execution: call slots reserved in DynamoDB.

Time is cut into slots `1 / (qps × headroom)` seconds apart; each slot holds at most one API call. A step
reserves the first free slot at or after the time it wants to call and the state machine waits until then.
Reserving ahead, rather than retrying on 429, keeps the budget busy without a retry storm.

Slots are the plan; send times are what the API counts. Shortly before its slot a step reads when the calls
before it really went out (`ready_at`) and announces its own (`mark_called`): a call that went out late moves
the next ones a little later — the headroom absorbs that within a few slots — instead of making one a 429.

Creates take their places in a lane, a fixed gap apart, and reserve the slot at their place at once: a burst of
uploads waits once each, and the slots between creates are left to the polls of tasks already paid for, which
reserve theirs where the task is predicted to be done (see `polling`). An idle budget's reading polls reserve
spare slots, which a create or a poll expected to find its task done takes over until they are announced.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .polling import Durations, spares

PARTITION = "api-slots"
SCHEDULE = "schedule"  # sk 0: the create lane and the learned durations
BUSY_WINDOW_S = 10.0  # creates queued further ahead than this (about ten) mean the budget is busy


@dataclass
class SlotLimiter:
    table_name: str
    qps: float
    client: Any  # a boto3 DynamoDB client
    headroom: float = 0.97  # calls spread over 97 % of the budget: qps calls span at least 1 s + margin_s
    max_slip_s: float = 0.5  # how late a call may still go in its slot; later, it takes a new one
    margin_s: float = 0.03  # the spread of the time from send to arrival at the API (p99 on the local stack: 30 ms)
    clock: Callable[[], float] = time.time
    ttl_s: int = 24 * 3600
    page: int = 64

    @property
    def spacing(self) -> float:
        return 1.0 / (self.qps * self.headroom)

    def reserve(
        self, not_before: float | None = None, *, within: bool = False, spare_until: float | None = None
    ) -> float:
        """Reserve one call slot, the first free one at or after `not_before` (default: now); returns the Unix
        time at which the call may be made.

        `within`: when `not_before` falls in the first half of a free slot, the call goes out at `not_before`
        itself, inside that slot, instead of at the next slot's start. A call sent late in its slot is what
        `ready_at` already corrects for: a call two slots on waits until no second holds more than `qps` calls.
        For an idle budget, where that wait seldom happens.

        `spare_until`: a call that can give way (an idle budget's reading poll) in a slot before this moment, when
        its task is expected done (`polling.spares` tells a caller which the returned moment is). A call that
        cannot — a create, a poll expected to find its task done — takes a spare call's slot when that comes
        first, and the spare call learns it when it announces itself (`mark_called`) and takes another. Without
        this, reading polls reserved seconds ahead fill an idle budget's slots, and the poll aimed at a task's end
        waits behind them. A reading pushed past its task's expected end by taken slots is such a poll itself: it
        no longer gives way, nor walks past the slots it could take."""
        start = max(self.clock(), not_before or 0.0)

        def moment(i: int) -> float:
            return max(start, i * self.spacing) if within else i * self.spacing

        def spare(i: int) -> bool:
            return spares(moment(i), spare_until)

        index = self.index_of(start) if within else math.ceil(start / self.spacing)
        if within and start - index * self.spacing > self.spacing / 2:
            # Late in its slot, the call would announce itself moments before the next slot's call reads the
            # send times: two reads that close can each miss the other's call, and a second holds three (a 429
            # on the local stack). Past half a slot, the next slot's start is less than half a slot away.
            index += 1
        # No attempt limit: every pass moves `index` forward (past a page of taken slots, or past a slot lost to
        # another step), and taken slots are finite, so a backlog only makes the slot later — never an error.
        while True:
            taken = self._taken_from(index)
            while index in taken and (spare(index) or not taken[index]):
                index += 1
            if len(taken) == self.page and index > max(taken):
                continue  # the whole page was taken: look at the next one before trying a slot
            item = {
                "pk": {"S": PARTITION},
                "sk": {"N": str(index)},
                "expires_at": {"N": str(int(index * self.spacing) + self.ttl_s)},
            }
            # A free slot, or one held by a spare call not yet announced: that call takes another.
            condition = "attribute_not_exists(sk)"
            if index in taken:
                condition = "attribute_exists(spare) AND attribute_not_exists(called_at)"
            try:
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item | ({"spare": {"BOOL": True}} if spare(index) else {}),
                    ConditionExpression=condition,
                )
                return moment(index)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                index += 1  # lost the race for this slot: the next one is the best candidate

    def _taken_from(self, index: int) -> dict[int, bool]:
        """The taken slots from `index` on (a page of them), each with whether a call that cannot wait may take it:
        held by a spare call that has not yet announced itself."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :p AND sk >= :s",
            ExpressionAttributeValues={":p": {"S": PARTITION}, ":s": {"N": str(index)}},
            ProjectionExpression="sk, spare, called_at",
            Limit=self.page,
        )
        return {int(item["sk"]["N"]): "spare" in item and "called_at" not in item for item in response.get("Items", [])}

    def index_of(self, at: float) -> int:
        """The slot that holds the moment `at` (a slot's start, or a moment inside it)."""
        return math.floor(at / self.spacing + 1e-4)  # a slot's start, computed as index × spacing, is its own

    def missed(self, slot_at: float, at: float | None = None) -> bool:
        """Whether a call going out at `at` (default: now) is too late for its slot and must take a new one."""
        return (self.clock() if at is None else at) - slot_at > self.max_slip_s

    def ready_at(self, slot_at: float) -> float:
        """When the call reserved for `slot_at` may go out: its slot (or now, when later) unless, by the recorded
        send times of the other calls (not their slots), that would put more than `qps` calls into one second."""
        at = max(self.clock(), slot_at)
        mine = self.index_of(slot_at)
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

    def mark_called(self, slot_at: float, sent_at: float, *, spare: bool = False) -> bool:
        """Record when the slot's call goes (or went) out, for the calls after it to judge their second by. A spare
        call's announcement holds only while its slot is still its own: False when a call that could not wait
        took it (the spare call must take another slot). Once announced, a slot is never taken."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": PARTITION}, "sk": {"N": str(self.index_of(slot_at))}},
                UpdateExpression="SET called_at = :t",
                ExpressionAttributeValues={":t": {"N": repr(sent_at)}},
                **({"ConditionExpression": "attribute_exists(spare)"} if spare else {}),
            )
        except ClientError as exc:
            if not spare or exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # -- the create lane and what recent tasks took --------------------------------------------------------

    def schedule(self) -> Schedule:
        item = self.client.get_item(
            TableName=self.table_name, Key={"pk": {"S": SCHEDULE}, "sk": {"N": "0"}}, ConsistentRead=True
        ).get("Item")
        return Schedule.from_item(item or {})

    def reserve_create(self, gap_slots: float) -> float:
        """A slot for a create at its place in the create lane: `gap_slots` slots after the place of the create
        before it, or now when that is past. Every create gets a definite slot at once, so one waits once
        however long the backlog, and creates never take more than 1 / `gap_slots` of the budget: the other
        slots stay free for the polls of tasks already paid for, however fast uploads arrive."""
        while True:
            lane = self.schedule().lane_at
            place = max(self.clock(), (lane or 0.0) + self.spacing * gap_slots)
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": SCHEDULE}, "sk": {"N": "0"}},
                    UpdateExpression="SET lane_at = :at",
                    ConditionExpression="attribute_not_exists(lane_at)" if lane is None else "lane_at = :was",
                    ExpressionAttributeValues={":at": {"N": repr(place)}}
                    | ({} if lane is None else {":was": {"N": repr(lane)}}),
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                continue  # another create took this place: read the lane again
            # Places may fall between slots (a fractional gap); the slot is the first one at or after the place.
            return self.reserve(not_before=place - 1e-6 * self.spacing)

    def learn(self, operation: str, durations: Durations) -> None:
        """Store an operation's updated durations. Two completions at once may both read the old value and one
        update is lost: an estimate that learns a little slower, never a wrong one."""
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": SCHEDULE}, "sk": {"N": "0"}},
            UpdateExpression="SET #op = :d",
            ExpressionAttributeNames={"#op": f"d:{operation}"},
            ExpressionAttributeValues={":d": durations.to_item()},
        )


@dataclass(frozen=True)
class Schedule:
    """The shared scheduling item: where the create lane ends, and each operation's learned durations."""

    lane_at: float | None
    durations: dict[str, dict]

    @classmethod
    def from_item(cls, item: dict) -> Schedule:
        lane = float(item["lane_at"]["N"]) if "lane_at" in item else None
        return cls(lane, {k[2:]: v for k, v in item.items() if k.startswith("d:")})

    def busy(self, now: float, window_s: float = BUSY_WINDOW_S) -> bool:
        """Creates are queued beyond the next few seconds: the budget is the bottleneck."""
        return self.lane_at is not None and self.lane_at > now + window_s

    def durations_of(self, operation: str, typical_s: float) -> Durations:
        return Durations.from_item(self.durations.get(operation), typical_s)
