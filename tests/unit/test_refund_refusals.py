"""Issue 15 item 5: which answers to a resent refund request fail the refund, per channel."""

from __future__ import annotations

import pytest

from tomato.channel.protocol import ChannelResult, ErrorClass, ResultStatus
from tomato.channel.refusals import refund_cannot_be_made


def refused(code: str) -> ChannelResult:
    return ChannelResult(ResultStatus.FAIL, ErrorClass.REJECTED, code=code, message="signed refusal")


@pytest.mark.parametrize(
    ("channel", "code"),
    [("alipay", "ACQ.TRADE_NOT_EXIST"), ("alipay", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"),
     ("alipay", "ACQ.TRADE_NOT_ALLOW_REFUND"), ("wechat", "NOT_ENOUGH"), ("wechat", "INVALID_REQUEST"),
     ("wechat", "RESOURCE_NOT_EXISTS"), ("bank", "35"), ("bank", "33"), ("bank", "ORIGINAL_NOT_PAID")],
)  # fmt: skip
def test_refusals_about_the_refund_itself_fail_it(channel: str, code: str) -> None:
    assert refund_cannot_be_made(channel, refused(code))


@pytest.mark.parametrize(
    ("channel", "code"),
    [("wechat", "FREQUENCY_LIMITED"), ("wechat", "RATELIMIT_EXCEEDED"), ("wechat", "SIGN_ERROR"),
     ("wechat", "NO_AUTH"), ("wechat", "PARAM_ERROR"), ("alipay", "isv.invalid-signature"),
     ("alipay", "isv.invalid-app-id"), ("alipay", "ACQ.DISCORDANT_REPEAT_REQUEST"), ("bank", "12"),
     ("bank", "37"), ("bank", "06"), ("bank", "99"), ("nowhere", "NOT_ENOUGH")],
)  # fmt: skip
def test_refusals_that_only_say_not_now_leave_it_pending(channel: str, code: str) -> None:
    assert not refund_cannot_be_made(channel, refused(code))


def test_only_definite_answers_count() -> None:
    reported_failed = ChannelResult(ResultStatus.FAIL, code="ABNORMAL")  # the refund's own outcome
    assert refund_cannot_be_made("wechat", reported_failed)
    for status in (ResultStatus.SUCCESS, ResultStatus.WAITING):
        assert not refund_cannot_be_made("wechat", ChannelResult(status, code="NOT_ENOUGH"))
    unknown = ChannelResult(ResultStatus.UNKNOWN, ErrorClass.SERVER, code="SYSTEM_ERROR")
    assert not refund_cannot_be_made("wechat", unknown)
