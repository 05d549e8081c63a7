"""Alipay service-provider ("ISV") mode: the provider's app acts for sub-merchants that authorized it.

Every request on behalf of a sub-merchant carries its `app_auth_token` as a common request parameter, signed with
the others (never inside `biz_content`); the notify of such a trade names the provider's app in `app_id` and the
sub-merchant in `auth_app_id` (docs/channels.md, "Service-provider accounts").
"""

from __future__ import annotations

from collections.abc import Mapping

from tomato.channel.protocol import CallbackRejected, ChannelResult, ErrorClass, ResultStatus, SubMerchant

DIRECT = "direct"
ISV = "isv"
MODES = (DIRECT, ISV)
SUB_MERCHANT_REQUIRED = "SUB_MERCHANT_REQUIRED"


def parse_mode(value: object) -> str:
    """The account's `mode`: "direct" (the default) or "isv"; anything else is a config error naming the field."""
    if value not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)}, not {value!r}")
    return str(value)


def app_auth_token(mode: str, sub: SubMerchant | None) -> str | None | ChannelResult:
    """The token a request sends: None in direct mode (`sub` ignored), the sub-merchant's in isv mode.

    An isv request without one is refused before any HTTP call: acting as the provider itself would create or
    touch the provider's own trades instead of the sub-merchant's.
    """
    if mode != ISV:
        return None
    if sub is None or not sub.app_auth_token:
        return ChannelResult(
            ResultStatus.FAIL,
            ErrorClass.REJECTED,
            code=SUB_MERCHANT_REQUIRED,
            message="an isv account acts only for a sub-merchant: app_auth_token missing",
        )
    return sub.app_auth_token


def notify_sub_merchant(mode: str, fields: Mapping[str, str]) -> str | None:
    """The sub-merchant a verified notify names (`auth_app_id`) in isv mode, None in direct mode.

    The caller compares it with the order's sub-merchant; a notify without one cannot be attributed and is refused.
    """
    if mode != ISV:
        return None
    auth_app_id = fields.get("auth_app_id")
    if not auth_app_id:
        raise CallbackRejected("alipay notify: no auth_app_id on an isv account's notify")
    return auth_app_id
