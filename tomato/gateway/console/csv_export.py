"""CSV downloads of the console: UTF-8 with a BOM (so spreadsheet programs read Chinese right), and cells that a
spreadsheet would run as a formula (starting with = + - @, tab or CR) made inert with a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from starlette.responses import Response

from tomato.gateway.console.render import SECURITY_HEADERS

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, int | float):
        return text  # a negative amount is a number, not a formula
    return "'" + text if text.startswith(_FORMULA) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Response:
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(csv_bytes(header, rows), media_type="text/csv; charset=utf-8", headers=headers)
