"""`POST /v1/payouts` in, the payout object out (docs/api.md "Payouts": the field rules the server enforces)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tomato.account.payouts.models import Payout
from tomato.core.clock import rfc3339
from tomato.core.crypto import sha256_hex
from tomato.core.money import MAX_FEN
from tomato.core.text import SafeText

OutPayoutNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class BankAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: SafeText = Field(
        min_length=1, max_length=64, description="the payee's name, as the bank holds it"
    )  # the payee, as the bank holds it
    number: str = Field(
        pattern=r"^[0-9]{8,32}$", description="the account number (8-32 ASCII digits)"
    )  # ASCII digits only
    bank: SafeText = Field(min_length=1, max_length=64, description="the payee's bank")


class PayoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    out_payout_no: OutPayoutNo = Field(
        description="your payout number, unique per app; repeating it with the same request returns the same payout"
    )
    amount: int = Field(
        ge=1, le=MAX_FEN, description="fen to pay out, at most the available balance"
    )  # and at most what is available (checked by the ledger)
    bank_account: BankAccount = Field(description="where the money goes (never returned)")

    def request_hash(self) -> str:
        """Every field, canonically serialised: the same out_payout_no with another request is a conflict."""
        return sha256_hex(json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode())


class PayoutView(BaseModel):
    """The API payout object, field for field (also the `data` of payout.* events); no bank account in it."""

    payout_no: str = Field(description="the platform's payout number (`W…`)")
    out_payout_no: str = Field(description="the merchant's payout number")
    amount: int = Field(description="fen paid out")
    status: str = Field(description="`PENDING`, `SUCCEEDED` or `FAILED`")
    failure_reason: str | None = Field(description="why the bank rejected it; null unless `FAILED`")
    created_at: str = Field(description="when the payout was accepted (RFC 3339 UTC)")
    finished_at: str | None = Field(
        description="when the bank settled it either way (RFC 3339 UTC); null while `PENDING`"
    )


def payout_view(p: Payout) -> PayoutView:
    return PayoutView(
        payout_no=p.payout_no,
        out_payout_no=p.out_payout_no,
        amount=p.amount,
        status=p.status,
        failure_reason=p.failure_reason,
        created_at=rfc3339(p.created_at) or "",
        finished_at=rfc3339(p.finished_at),
    )
