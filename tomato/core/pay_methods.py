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


CHANNEL_OF: dict[PayMethod, str | None] = {
    PayMethod.ALIPAY_QR: "alipay",
    PayMethod.ALIPAY_WAP: "alipay",
    PayMethod.ALIPAY_PC: "alipay",
    PayMethod.WECHAT_NATIVE: "wechat",
    PayMethod.WECHAT_JSAPI: "wechat",
    PayMethod.WECHAT_H5: "wechat",
    PayMethod.BANK_WEB: "bank",
    PayMethod.CASHIER: None,
}

ALL_PAY_METHODS: tuple[str, ...] = tuple(m.value for m in PayMethod)
