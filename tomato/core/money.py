"""Money is integer fen everywhere; `Decimal` yuan strings exist only at channel edges."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

FEN_PER_YUAN = 100
MAX_FEN = 2**63 - 1  # the largest amount a BIGINT column holds: the API's upper bound for any amount
_CENT = Decimal("0.01")


class MoneyFormatError(ValueError):
    """A channel amount string that is not a yuan amount with at most two decimals."""


def fen_to_yuan(fen: int) -> str:
    """1234 → "12.34" (exactly two decimals, as Alipay and bank statements write it)."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError("fen must be an int")
    return str((Decimal(fen) / FEN_PER_YUAN).quantize(_CENT))


def yuan_to_fen(yuan: str | Decimal) -> int:
    """ "12.34" → 1234; rejects more than two decimals, floats and garbage instead of rounding silently."""
    if isinstance(yuan, float):
        raise TypeError("floats are never money")
    try:
        value = Decimal(yuan.strip()) if isinstance(yuan, str) else yuan
    except InvalidOperation as exc:
        raise MoneyFormatError(f"not an amount: {yuan!r}") from exc
    if not value.is_finite():
        raise MoneyFormatError(f"not an amount: {yuan!r}")
    fen = value * FEN_PER_YUAN
    if fen != fen.to_integral_value():
        raise MoneyFormatError(f"more than two decimals: {yuan!r}")
    return int(fen)


def proportional_fen(amount: int, rate_ppm: int) -> int:
    """amount × rate (parts per million), rounded half up to the fen; used by fee rules."""
    return int((Decimal(amount) * rate_ppm / 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))
