"""The pay-method vocabulary of the merchant API, shared by merchants (enabled methods), routing and orders."""

from __future__ import annotations

from enum import StrEnum


class PayMethod(StrEnum):
    ALIPAY_QR = "ALIPAY_QR"
    ALIPAY_WAP = "ALIPAY_WAP"
    ALIPAY_PC = "ALIPAY_PC"
    WECHAT_NATIVE = "WECHAT_NATIVE"
    WECHAT_JSAPI = "WECHAT_JSAPI"
    WECHAT_H5 = "WECHAT_H5"
    BANK_WEB = "BANK_WEB"
    CASHIER = "CASHIER"
    BARCODE = "BARCODE"  # the till scans the payer's code; the code says which channel


CHANNEL_OF: dict[PayMethod, str | None] = {
    PayMethod.ALIPAY_QR: "alipay",
    PayMethod.ALIPAY_WAP: "alipay",
    PayMethod.ALIPAY_PC: "alipay",
    PayMethod.WECHAT_NATIVE: "wechat",
    PayMethod.WECHAT_JSAPI: "wechat",
    PayMethod.WECHAT_H5: "wechat",
    PayMethod.BANK_WEB: "bank",
    PayMethod.CASHIER: None,
    PayMethod.BARCODE: None,
}

ALL_PAY_METHODS: tuple[str, ...] = tuple(m.value for m in PayMethod)


# payer-presented codes (付款码) by channel: (first two digits, lengths)
_BARCODE_SHAPES: tuple[tuple[str, range, tuple[int, ...]], ...] = (
    ("alipay", range(25, 31), tuple(range(16, 25))),
    ("wechat", range(10, 16), (18,)),
    ("bank", range(62, 63), (19,)),
)


def barcode_channel(auth_code: str) -> str | None:
    """The channel a payer's code belongs to (Alipay: 25–30 and 16–24 digits; WeChat: 10–15 and 18; UnionPay: 62
    and 19), None when it is no channel's."""
    if not auth_code.isascii() or not auth_code.isdigit():
        return None
    for channel, prefixes, lengths in _BARCODE_SHAPES:
        if int(auth_code[:2]) in prefixes and len(auth_code) in lengths:
            return channel
    return None
