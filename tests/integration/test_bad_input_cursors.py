"""Issue 16: every paging cursor that does not decode to a key its list could have issued — a number beyond 64 bits,
digits that are not ASCII, a character the database refuses — is a 422 naming `cursor`, never a 500."""

from __future__ import annotations

import base64

import pytest

from tests.fixtures.pay_stack import PayStack
from tests.fixtures.stack import admin


def cursor(key: str) -> str:
    """A cursor shaped like the ones the lists hand out, around any key."""
    return base64.urlsafe_b64encode(f"c1:{key}".encode()).decode().rstrip("=")


# numeric keys: the events feed's positions and the deliveries' sequence numbers
BAD_NUMBERS = [
    "9" * 20,  # 20 digits: past 2**64
    str(2**63),  # one past the largest BIGINT
    "-1",
    "²",  # `str.isdigit()` says yes, `int()` says no
    "٣",  # an Arabic-Indic three, which `int()` reads as 3
    "1\x00",
]
# the string-keyed lists (merchants, channel accounts) and routing rules ("rank:id")
BAD_KEYS = ["M1\x00", "é", "1 2", ""]
BAD_RULE_KEYS = ["٣:RR1", "1:RR٣", "99999999:RR1", "1:RR1\x00", f"{2**64}:RR1"]


def assert_cursor_422(status: int, body: dict[str, object], what: str) -> None:
    assert status == 422, (what, body)
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "INVALID_REQUEST", (what, body)
    assert [d["field"] for d in error["details"]] == ["cursor"], (what, body)


async def test_events_feed_cursor_out_of_range_is_422(pay: PayStack) -> None:
    for key in BAD_NUMBERS:
        r = await pay.client.request("GET", f"/v1/events?cursor={cursor(key)}")
        assert_cursor_422(r.status_code, r.json(), key)


@pytest.mark.parametrize("path", ["/admin/deliveries"])
async def test_numeric_admin_cursor_out_of_range_is_422(pay: PayStack, path: str) -> None:
    for key in BAD_NUMBERS:
        r = await pay.http.get(path, params={"cursor": cursor(key)}, headers=admin())
        assert_cursor_422(r.status_code, r.json(), key)


@pytest.mark.parametrize("path", ["/admin/merchants", "/admin/channel-accounts"])
async def test_string_admin_cursor_with_foreign_characters_is_422(pay: PayStack, path: str) -> None:
    for key in BAD_KEYS:
        r = await pay.http.get(path, params={"cursor": cursor(key)}, headers=admin())
        assert_cursor_422(r.status_code, r.json(), key)
    # a well-formed key still pages (past every merchant or account there is: an empty last page)
    r = await pay.http.get(path, params={"cursor": cursor("Z9")}, headers=admin())
    assert r.status_code == 200 and r.json() == {"data": [], "next_cursor": None}, r.text


async def test_routing_rule_cursor_outside_the_rank_range_is_422(pay: PayStack) -> None:
    for key in BAD_RULE_KEYS:
        r = await pay.http.get("/admin/routing-rules", params={"cursor": cursor(key)}, headers=admin())
        assert_cursor_422(r.status_code, r.json(), key)
