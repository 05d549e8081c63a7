"""Reads an HTML form body (application/x-www-form-urlencoded) with a size bound, without extra dependencies."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.requests import Request

from tomato.core.errors import InvalidRequest, PayloadTooLarge

MAX_BODY = 64 * 1024
MAX_FIELDS = 200
_INT = re.compile(r"-?[0-9]{1,15}", re.ASCII)  # `str.isdigit()` would pass `²`; 15 digits fit every amount


class Form:
    """The fields of one posted form; a field sent more than once (checkboxes) keeps every value."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def get(self, name: str) -> str | None:
        """The last value, stripped; None when absent or blank."""
        values = self._values.get(name)
        if not values:
            return None
        value = values[-1].strip()
        return value or None

    def getlist(self, name: str) -> list[str]:
        return [v.strip() for v in self._values.get(name, []) if v.strip()]

    def int(self, name: str) -> int | None:
        """An optional whole number; anything else is a 422 naming the field."""
        text = self.get(name)
        if text is None:
            return None
        if _INT.fullmatch(text) is None:
            raise InvalidRequest.field(name, "must be a whole number")
        return int(text)


async def read_form(request: Request) -> Form:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Form([])  # no fields: the CSRF check refuses it
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise PayloadTooLarge("the form is larger than 64 KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("the form could not be read") from exc
    return Form(pairs)
