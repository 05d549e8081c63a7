"""Errors of the channel context."""

from __future__ import annotations

from tomato.core.errors import Conflict, NotFound


class ChannelAccountNotFound(NotFound):
    code = "CHANNEL_ACCOUNT_NOT_FOUND"


class RoutingRuleNotFound(NotFound):
    code = "ROUTING_RULE_NOT_FOUND"


class ChannelIdentityNotFound(NotFound):
    code = "CHANNEL_IDENTITY_NOT_FOUND"


class ChannelIdentityConflict(Conflict):
    code = "CHANNEL_IDENTITY_CONFLICT"
