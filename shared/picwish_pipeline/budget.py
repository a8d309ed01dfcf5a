"""The credit budget: the credits spent in the last 24 hours (the tally's hourly items, this hour and the 23
before it) against CREDIT_BUDGET_PER_DAY. A create the budget cannot pay for waits — never fails, never drops —
and looks again every BUDGET_RECHECK_S, so the window moving on or a raised budget lets it through.

Checked at the create's slot, just before its POST: creates checking at once may each see room for one more,
so the budget can be passed by the creates in flight at that moment (a few: creates go one slot at a time)."""

from __future__ import annotations

from dataclasses import dataclass

from picwish_visual.catalog import Operation

from . import tally
from .services import Services

WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Standing:
    """Credits spent in the window, the budget, and whether the next create must wait."""

    spent: int
    budget: int
    holds: bool

    @property
    def used_percent(self) -> float:
        """What the alarms read: a budget that holds a create is spent (100 %) though a few credits remain."""
        share = round(100.0 * self.spent / self.budget, 1)
        return max(share, 100.0) if self.holds else share


def spent(svc: Services, now: float) -> int:
    """Credits of the tasks created in the window; a task whose price the docs do not give counts one."""
    _total, window = tally.read(svc.dynamodb, svc.settings.tasks_table, now - WINDOW_S + 3600, now)
    return window.get("credits", 0) + window.get("credits_undocumented", 0)


def standing(svc: Services, op: Operation) -> Standing | None:
    """None without a budget; else where the budget stands for a create of `op`."""
    budget = svc.settings.credit_budget
    if budget <= 0:
        return None
    used = spent(svc, svc.clock())
    return Standing(used, budget, holds=used + (op.credits or 1) > budget)
