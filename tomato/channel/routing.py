"""Rule matching and candidate ordering (routing rules, docs/channels.md).

The matching rule of highest rank wins (app null or equal, pay method held, amount within inclusive bounds);
its candidates are ordered by ascending priority and, within one priority, by weighted random draw without
replacement — so the first candidate follows the weights and the rest are fallbacks.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tomato.channel.models import RoutingRule


@dataclass(frozen=True)
class RouteCandidate:
    channel_account_id: str
    priority: int
    weight: int


def in_window(rule: RoutingRule, local_hhmm: str) -> bool:
    """`time_start` inclusive, `time_end` exclusive, in business time; a window may wrap past midnight."""
    if rule.time_start is None or rule.time_end is None:
        return True
    if rule.time_start <= rule.time_end:
        return rule.time_start <= local_hhmm < rule.time_end
    return local_hhmm >= rule.time_start or local_hhmm < rule.time_end


def rule_matches(rule: RoutingRule, app_id: str, pay_method: str, amount: int, local_hhmm: str = "12:00") -> bool:
    if rule.app_id is not None and rule.app_id != app_id:
        return False
    if not in_window(rule, local_hhmm):
        return False
    if pay_method not in json.loads(rule.pay_methods):
        return False
    if rule.min_amount is not None and amount < rule.min_amount:
        return False
    return not (rule.max_amount is not None and amount > rule.max_amount)


def pick_rule(
    rules: Sequence[RoutingRule], app_id: str, pay_method: str, amount: int, local_hhmm: str = "12:00"
) -> RoutingRule | None:
    matching = [r for r in rules if rule_matches(r, app_id, pay_method, amount, local_hhmm)]
    if not matching:
        return None
    # highest rank; an app-specific rule beats a shared one of equal rank; then newest
    return max(matching, key=lambda r: (r.rank, r.app_id is not None, r.created_at, r.id))


def order_candidates(candidates: Sequence[RouteCandidate], rng: random.Random) -> list[RouteCandidate]:
    ordered: list[RouteCandidate] = []
    for priority in sorted({c.priority for c in candidates}):
        group = [c for c in candidates if c.priority == priority]
        while group:
            pick = rng.choices(group, weights=[c.weight for c in group], k=1)[0]
            ordered.append(pick)
            group.remove(pick)
    return ordered


def candidates_of(rule: RoutingRule) -> list[RouteCandidate]:
    return [RouteCandidate(c["channel_account_id"], c["priority"], c["weight"]) for c in json.loads(rule.candidates)]
