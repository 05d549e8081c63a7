"""WeChat Pay API v2 wire format, spoken only for payment-code (付款码) pay: flat XML bodies signed with the v2 key.

Signing (both ways): every field with a non-empty value except `sign`, sorted by name (ASCII), written `k=v` joined
by `&`, then `&key=<api_v2_key>`; `sign` is that string's HMAC-SHA256 keyed with the v2 key (`sign_type`
HMAC-SHA256) or its MD5 (`sign_type` MD5, the default when absent), in uppercase hex. Answers whose `return_code` is
FAIL are unsigned (the request was not processed); every other answer carries `sign`, checked in constant time.

XML is parsed with expat and refused outright when it declares a DOCTYPE or an entity, so no entity is ever
expanded from an untrusted body.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime
from xml.parsers import expat

from tomato.channel.adapters.wechat.codec import BEIJING

HMAC_SHA256 = "HMAC-SHA256"
MD5 = "MD5"
SIGN_TYPES = (HMAC_SHA256, MD5)
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_XML_BYTES = 64 * 1024
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def nonce_str() -> str:
    """32 random letters/digits (the v2 `nonce_str`, at most 32 characters)."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(32))


def sign_string(params: Mapping[str, str], key: str) -> bytes:
    """What is signed: the sorted non-empty fields but `sign`, then the key."""
    items = [f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != ""]
    return "&".join([*items, f"key={key}"]).encode("utf-8")


def sign(params: Mapping[str, str], key: str, sign_type: str = HMAC_SHA256) -> str:
    """The `sign` of `params` under the v2 key, in uppercase hex."""
    message = sign_string(params, key)
    if sign_type == HMAC_SHA256:
        return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()
    if sign_type == MD5:
        return hashlib.md5(message, usedforsecurity=False).hexdigest().upper()
    raise ValueError(f"unsupported sign_type {sign_type!r}")


def verify(params: Mapping[str, str], key: str, sign_type: str = HMAC_SHA256) -> bool:
    """Whether `params["sign"]` is the v2 signature of the other fields (constant-time compare)."""
    presented = params.get("sign", "")
    if not presented:
        return False
    return hmac.compare_digest(presented.upper().encode("ascii", "replace"), sign(params, key, sign_type).encode())


def signed(params: Mapping[str, str], key: str, sign_type: str = HMAC_SHA256) -> dict[str, str]:
    """`params` without empty fields, plus its `sign`."""
    body = {k: v for k, v in params.items() if v != "" and k != "sign"}
    body["sign"] = sign(body, key, sign_type)
    return body


def to_xml(params: Mapping[str, str]) -> bytes:
    """`<xml>` with one CDATA element per field, sorted by name."""
    parts = ["<xml>"]
    for name, value in sorted(params.items()):
        if not name.isascii() or not name.replace("_", "").isalnum():
            raise ValueError(f"bad field name {name!r}")
        text = value.replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{name}><![CDATA[{text}]]></{name}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def from_xml(data: bytes) -> dict[str, str]:
    """The fields of a flat `<xml>` body; ValueError for anything else (DOCTYPE, entities, nesting, not XML)."""
    if len(data) > MAX_XML_BYTES:
        raise ValueError("XML body too large")
    fields: dict[str, str] = {}
    stack: list[str] = []
    text: list[str] = []

    def refuse(*_args: object) -> None:
        raise ValueError("DOCTYPE and entity declarations are refused")

    def start(name: str, attrs: dict[str, str]) -> None:
        if (not stack and name != "xml") or len(stack) > 1:
            raise ValueError("not a flat <xml> body")
        stack.append(name)
        text.clear()

    def end(name: str) -> None:
        stack.pop()
        if stack:
            if name in fields:
                raise ValueError(f"field {name} repeated")
            fields[name] = "".join(text)

    parser = expat.ParserCreate("utf-8")
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ValueError(f"not XML: {exc}") from None
    return fields


def format_time(value: datetime) -> str:
    """`yyyyMMddHHmmss`, Beijing time (v2 `time_end`)."""
    return value.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def parse_time(text: str) -> datetime:
    """A v2 `yyyyMMddHHmmss` Beijing time, as an aware datetime."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"bad v2 time {text!r}")
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
