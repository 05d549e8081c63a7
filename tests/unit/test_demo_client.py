"""`tomato demo` verifies webhooks with the function docs/webhooks.md gives merchants: it must accept the worked
example's signatures (before and during a key rotation) and refuse a changed body, another secret or a stale
timestamp."""

from __future__ import annotations

from tomato.runtime.demo_client import verify_webhook
from tomato.runtime.demo_story import yuan

NEW, OLD = "whsec-new-4RfYpS2kLq8vXn1ZtB6mHc0d", "whsec-old-9TgW3eJ7uQa5LxKp2Vb8NyFz"
BODY = (b'{"id":"E1001","type":"pay.succeeded","created_at":"2025-11-30T09:20:00Z","data":{"order_no":"P2001",'
        b'"amount":1234,"status":"SUCCEEDED"}}')  # fmt: skip
ONE = "HMAC-SHA256 OV+a91bXntVotZse/uwWrTlPF/Klf5ap0PTGFa4ycf0="
BOTH = ONE + ",HMAC-SHA256 FcCzNXGN6wCrZZwCxbjr6AdWrhp6cgC1u44GSW9GgtY="
AT = 1764494400


def _headers(signature: str) -> dict[str, str]:
    return {"Tomato-Timestamp": str(AT), "Tomato-Nonce": "8f3Kq1ZrX0bLm2Vn7YcT4wPa", "Tomato-Signature": signature}


def test_the_documented_example_verifies_before_and_during_a_rotation() -> None:
    assert verify_webhook(_headers(ONE), BODY, [NEW], now=AT + 10)
    assert verify_webhook(_headers(BOTH), BODY, [NEW], now=AT)
    assert verify_webhook(_headers(BOTH), BODY, [OLD], now=AT)  # a merchant still on the older key


def test_a_changed_body_another_secret_or_a_stale_timestamp_is_refused() -> None:
    assert not verify_webhook(_headers(ONE), BODY.replace(b"1234", b"1235"), [NEW], now=AT)
    assert not verify_webhook(_headers(ONE), BODY, [OLD], now=AT)
    assert not verify_webhook(_headers(ONE), BODY, [NEW], now=AT + 301)


def test_yuan_formats_fen_exactly() -> None:
    assert [yuan(0), yuan(5), yuan(121_600), yuan(-3_000), yuan(123_456_789)] == [
        "¥0.00", "¥0.05", "¥1,216.00", "-¥30.00", "¥1,234,567.89"]  # fmt: skip
