"""Reading an event's booking facts: each field checked for type and range before it makes a journal line.

Shared by the booking of direct payments (`booking`) and of service-provider payments (`booking_provider`).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from tomato.core.money import MAX_FEN

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


class BadFacts(ValueError):
    """The event's facts do not make a journal (a field missing or out of range): recorded as rejected."""


def text(facts: dict[str, Any], name: str, max_length: int = 32) -> str:
    """A non-empty string that fits its journal column (order, refund and merchant numbers: 32 characters)."""
    value = facts.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise BadFacts(f"facts.{name} must be a string of 1 to {max_length} characters")
    return value


def fen(facts: dict[str, Any], name: str, *, default: int | None = None) -> int:
    value = facts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise BadFacts(f"facts.{name} must be an integer fen 0..{MAX_FEN}")
    return value


def business_date(facts: dict[str, Any]) -> str:
    value = text(facts, "business_date", 10)
    try:
        if _DATE.fullmatch(value) is None or date.fromisoformat(value).isoformat() != value:
            raise ValueError(value)
    except ValueError as exc:
        raise BadFacts("facts.business_date must be YYYY-MM-DD") from exc
    return value


def service_provider(facts: dict[str, Any]) -> bool:
    """True when the payment went through a service-provider account (Alipay isv, WeChat partner). Facts written
    before the key existed lack it: those payments were direct."""
    value = facts.get("service_provider", False)
    if not isinstance(value, bool):
        raise BadFacts("facts.service_provider must be a boolean")
    return value
