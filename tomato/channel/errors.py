"""Errors of the channel context."""

from __future__ import annotations

from tomato.core.errors import NotFound


class ChannelAccountNotFound(NotFound):
    code = "CHANNEL_ACCOUNT_NOT_FOUND"


class RoutingRuleNotFound(NotFound):
    code = "ROUTING_RULE_NOT_FOUND"
