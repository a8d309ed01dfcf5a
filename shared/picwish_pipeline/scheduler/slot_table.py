"""The shared table of call slots (one API call each) and the create lane, in DynamoDB: reserving a slot,
reading when the calls before it went out, announcing a call, and the learned beliefs. Words as defined in
`picwish_pipeline.scheduler`.

Reserving ahead, rather than retrying on 429, keeps the budget busy without a retry storm; announcing send times
lets a call that went out late move the next ones a little later (the headroom absorbs that within a few slots)
instead of making one a 429.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from .belief import Durations
from .plan import Schedule, spares

PARTITION = "api-slots"
SCHEDULE = "schedule"  # sk 0: the create lane and the learned durations


@dataclass(frozen=True)
class Ask:
    """What a reservation asks for. `within`: an idle budget's call may go out at `start` itself, inside a free
    slot, rather than at the next slot's start (`ready_at` keeps a second within the QPS). `spare_until`: the call
    is a reading in any slot before this moment (a call that is not walks past no slot it could take)."""

    start: float
    spacing: float
    within: bool = False
    spare_until: float | None = None

    def moment(self, index: int) -> float:
        return max(self.start, index * self.spacing) if self.within else index * self.spacing

    def spare(self, index: int) -> bool:
        return spares(self.moment(index), self.spare_until)


@dataclass
class SlotLimiter:
    """The budget's slot table, shared by every execution; `qps` calls a second at most."""

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
        """Reserve the first free slot at or after `not_before` (default: now), as `Ask` says; returns the Unix
        time at which the call may be made. No attempt limit: every pass moves to a later slot, and taken slots
        are finite, so a backlog only makes the slot later — never an error."""
        ask = Ask(max(self.clock(), not_before or 0.0), self.spacing, within, spare_until)
        index = self._first_index(ask)
        while True:
            index, displaces = self._choose(index, ask)
            if self._claim(index, ask, displaces=displaces):
                return ask.moment(index)
            index += 1  # lost the race for this slot: the next one is the best candidate

    def _first_index(self, ask: Ask) -> int:
        if not ask.within:
            return math.ceil(ask.start / self.spacing)
        index = self.index_of(ask.start)
        # Late in its slot, a call would announce itself moments before the next slot's call reads the send
        # times: two reads that close can each miss the other's call. Past half a slot, take the next one.
        return index + 1 if ask.start - index * self.spacing > self.spacing / 2 else index

    def _choose(self, index: int, ask: Ask) -> tuple[int, bool]:
        """The first slot from `index` on that this call may claim, and whether a reading holds it."""
        while True:
            taken = self._taken_from(index)
            while index in taken and (ask.spare(index) or not taken[index]):
                index += 1
            if len(taken) == self.page and index > max(taken):
                continue  # the whole page was taken: look at the next one before trying a slot
            return index, index in taken

    def _claim(self, index: int, ask: Ask, *, displaces: bool) -> bool:
        """Claim a free slot, or one held by a reading not yet announced (that reading takes another)."""
        item = {
            "pk": {"S": PARTITION},
            "sk": {"N": str(index)},
            "expires_at": {"N": str(int(index * self.spacing) + self.ttl_s)},
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item | ({"spare": {"BOOL": True}} if ask.spare(index) else {}),
                ConditionExpression=(
                    "attribute_exists(spare) AND attribute_not_exists(called_at)"
                    if displaces
                    else "attribute_not_exists(sk)"
                ),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

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

    def reserve_create(self, gap_slots: float, *, backfill: bool = False, live_share: float = 1.0) -> float:
        """A slot for a create at its place in its create lane: `gap_slots` slots after the place of the create
        before it, or now when that is past. Every create gets a definite slot at once, so one waits once
        however long the backlog, and creates never take more than 1 / `gap_slots` of the budget: the other
        slots stay free for the polls of tasks already paid for, however fast uploads arrive.

        Uploads and a backfill keep two lanes. A backfill's creates are spaced to take (1 − `live_share`) of
        the creates; an upload's take the whole lane, or `live_share` of it while the backfill's lane runs
        ahead — so an upload never waits behind a backfill's queue, and together they never take more."""
        lane = "backfill_at" if backfill else "lane_at"
        while True:
            schedule = self.schedule()
            last = schedule.backfill_at if backfill else schedule.lane_at
            now = self.clock()
            backfilling = (schedule.backfill_at or 0.0) > now
            share = 1 - live_share if backfill else (live_share if backfilling else 1.0)
            place = max(now, (last or 0.0) + self.spacing * gap_slots / share)
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": SCHEDULE}, "sk": {"N": "0"}},
                    UpdateExpression="SET #lane = :at",
                    ConditionExpression="attribute_not_exists(#lane)" if last is None else "#lane = :was",
                    ExpressionAttributeNames={"#lane": lane},
                    ExpressionAttributeValues={":at": {"N": repr(place)}}
                    | ({} if last is None else {":was": {"N": repr(last)}}),
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
