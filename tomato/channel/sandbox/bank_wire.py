"""What every answer of the bank simulator shares: the raw field dict, the success message, the signed refusal,
the common fields and the reading of a transaction's orderId, txnAmt and txnTime."""

from __future__ import annotations

from datetime import datetime

from tomato.channel.adapters.bank import codec

OK_MSG = "成功[0000000]"

Fields = dict[str, str]


class BankError(Exception):
    """A signed refusal: `respCode` and `respMsg` of the answer."""

    def __init__(self, code: str, message: str) -> None:
        plain = "".join(c for c in message if c not in "{}[]&")  # it goes into a raw k=v body
        super().__init__(f"{code} {plain}")
        self.code, self.message = code, plain


def common_fields(mer_id: str) -> Fields:
    return {
        "version": codec.VERSION,
        "encoding": codec.ENCODING,
        "signMethod": codec.SIGN_METHOD_RSA,
        "accessType": "0",
        "merId": mer_id,
    }


def txn_fields(fields: Fields) -> tuple[str, int, datetime]:
    """orderId, txnAmt (fen, > 0) and txnTime of a transaction request, or the bank's format refusal."""
    order_id = fields.get("orderId", "")
    try:
        amount = codec.parse_fen(fields.get("txnAmt", ""))
        txn_time = codec.parse_time(fields.get("txnTime", ""))
    except ValueError as exc:
        raise BankError("10", f"报文格式错误: {exc}") from None
    if not codec.valid_order_id(order_id) or amount <= 0:
        raise BankError("10", "报文格式错误: orderId or txnAmt")
    return order_id, amount, txn_time
