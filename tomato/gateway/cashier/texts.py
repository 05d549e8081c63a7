"""Every sentence of the cashier page, in Simplified Chinese (the payers' default) and English.

Both catalogs have the same keys (a unit test holds them to it); templates read them as `t.<key>`, so a missing
one is an error at render time (StrictUndefined), never an empty gap on a payer's screen.
"""

from __future__ import annotations

from tomato.gateway.languages import EN, ZH

STATES = ("waiting", "paid", "closed", "expired", "failed")

TEXTS: dict[str, dict[str, str]] = {
    ZH: {
        "brand": "番茄支付",
        "language": "语言",
        "other_language": "English",
        "merchant": "收款方",
        "order": "订单号",
        "qr_label": "本页面的二维码",
        "qr_caption": "请使用支付宝或微信扫码支付",
        "pay_with": "选择支付方式",
        "pay_alipay": "支付宝支付",
        "pay_wechat": "微信支付",
        "wechat_scan": "使用微信支付：请用微信扫描上方二维码。",
        "openid_sandbox_label": "微信 openid（沙箱）",
        "openid_label": "openid",
        "need_openid": "微信支付需要您的 openid 才能继续。",
        "bad_openid": "该 openid 无效。",
        "openid_sandbox_before": "在真实的微信中它来自微信授权登录；在本沙箱中，请在本页地址后加上 ",
        "openid_sandbox_after": "，或在下方输入。",
        "openid_missing": "未能获取您的微信身份，请从商户处重新打开支付链接。",
        "continue": "继续",
        "jsapi_title": "微信支付（JSAPI）",
        "wx_pay": "在微信中支付",
        "wx_sandbox_1": "本沙箱没有微信客户端，因此没有用于拉起支付的 ",
        "wx_sandbox_2": "。请用 ",
        "wx_sandbox_3": " 和本订单号完成支付，本页面会自动更新。",
        "wx_outside": "请在微信中打开本页面完成支付。",
        "other_wallet": "该订单已在使用其他钱包支付。",
        "return": "返回商户",
        "to_alipay": "前往支付宝",
        "not_found_title": "支付链接不存在",
        "not_found": "该支付链接无效，请向商户索取新的链接。",
        "error_title": "无法发起支付",
        "error_code": "错误码",
        "error_reference": "参考编号",
        "error_generic": "暂时无法发起支付，请稍后再试。",
        "NO_CHANNEL_AVAILABLE": "该支付方式暂不可用，请换一种方式支付。",
        "CHANNEL_ERROR": "支付渠道暂无响应，请稍后再试。",
        "INTERNAL_ERROR": "系统繁忙，请稍后再试。",
        "state_waiting": "等待支付…",
        "state_paid": "支付成功，谢谢！",
        "state_closed": "订单已关闭，无法继续支付。",
        "state_expired": "支付链接已过期。",
        "state_failed": "支付失败。",
    },
    EN: {
        "brand": "Tomato Pay",
        "language": "Language",
        "other_language": "中文",
        "merchant": "Pay to",
        "order": "Order",
        "qr_label": "QR code of this page",
        "qr_caption": "Scan with Alipay or WeChat",
        "pay_with": "Pay with",
        "pay_alipay": "Pay with Alipay",
        "pay_wechat": "Pay with WeChat",
        "wechat_scan": "To pay with WeChat, scan the QR code above in WeChat.",
        "openid_sandbox_label": "WeChat openid (sandbox)",
        "openid_label": "openid",
        "need_openid": "WeChat Pay needs your openid to continue.",
        "bad_openid": "That openid is not valid.",
        "openid_sandbox_before": "In the real WeChat app it comes from WeChat sign-in; in this sandbox, add ",
        "openid_sandbox_after": " to this page's address or enter it here.",
        "openid_missing": "We could not identify your WeChat account. Please open the payment link from the "
        "merchant again.",
        "continue": "Continue",
        "jsapi_title": "WeChat Pay (JSAPI)",
        "wx_pay": "Pay in WeChat",
        "wx_sandbox_1": "This sandbox has no WeChat app, so there is no ",
        "wx_sandbox_2": " to open the payment sheet. Pay with ",
        "wx_sandbox_3": " and this order number; this page updates by itself.",
        "wx_outside": "Open this page in WeChat to pay.",
        "other_wallet": "This order is already being paid with another wallet.",
        "return": "Back to the merchant",
        "to_alipay": "Continue to Alipay",
        "not_found_title": "Payment link not found",
        "not_found": "This payment link is not valid. Please ask the merchant for a new one.",
        "error_title": "Payment could not start",
        "error_code": "Code",
        "error_reference": "reference",
        "error_generic": "This payment cannot start right now. Please try again in a moment.",
        "NO_CHANNEL_AVAILABLE": "This wallet is not available for this order right now. Please try another wallet.",
        "CHANNEL_ERROR": "The payment channel did not answer. Please try again in a moment.",
        "INTERNAL_ERROR": "Something went wrong on our side. Please try again in a moment.",
        "state_waiting": "Waiting for payment…",
        "state_paid": "Paid. Thank you!",
        "state_closed": "Closed: this order can no longer be paid.",
        "state_expired": "Expired: this payment link is no longer valid.",
        "state_failed": "Failed: the payment did not go through.",
    },
}

FRIENDLY_CODES = ("NO_CHANNEL_AVAILABLE", "CHANNEL_ERROR", "INTERNAL_ERROR")


def state_labels(lang: str) -> dict[str, str]:
    """What the status line says in each display state (the page's poller shows them too)."""
    return {state: TEXTS[lang][f"state_{state}"] for state in STATES}
