"""Alipay RSA2 signatures, byte for byte (docs/channels.md3, §A4, §A7).

- Requests: every param except `sign` and empty values (`sign_type` kept), sorted by key, `k=v` joined by
  `&`, raw values.
- Sync responses: the signature covers the raw substring of the `<method>_response` node exactly as received,
  never a re-serialisation.
- Async notifies: every field except `sign` and `sign_type`, sorted, `k=v&…` (empty values kept, as Alipay's Java
  `rsaCheckV1` does).
Verification is delegated to `cryptography`, whose RSA verify does the same work whatever the signature holds.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from tomato.core.crypto import rsa_sign_b64, rsa_verify_b64


def sign_content(params: Mapping[str, str]) -> str:
    """The request string to sign: drop `sign` and empty values, keep `sign_type`, sort, `k=v` joined by `&`."""
    items = sorted((k, v) for k, v in params.items() if k != "sign" and v != "")
    return "&".join(f"{k}={v}" for k, v in items)


def notify_content(params: Mapping[str, str]) -> str:
    """The notify string to verify: drop `sign` and `sign_type`, sort, `k=v` joined by `&`."""
    items = sorted((k, v) for k, v in params.items() if k not in ("sign", "sign_type"))
    return "&".join(f"{k}={v}" for k, v in items)


def sign_params(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """A copy of `params` with `sign` added over the A3 content."""
    signed = {k: v for k, v in params.items() if k != "sign"}
    signed["sign"] = rsa_sign_b64(private_key, sign_content(signed).encode("utf-8"))
    return signed


def verify_params(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Check a request's `sign` (the simulator's side of A3)."""
    signature = params.get("sign", "")
    if not signature:
        return False
    return rsa_verify_b64(public_key, sign_content(params).encode("utf-8"), signature)


def sign_notify(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> dict[str, str]:
    """A copy of notify `params` with `sign` over the A7 content (`sign_type` is sent but not signed)."""
    signed = {k: v for k, v in params.items() if k != "sign"}
    signed["sign"] = rsa_sign_b64(private_key, notify_content(signed).encode("utf-8"))
    return signed


def verify_notify(params: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    signature = params.get("sign", "")
    if not signature:
        return False
    return rsa_verify_b64(public_key, notify_content(params).encode("utf-8"), signature)


def extract_node(body: str, key: str) -> str | None:
    """The raw `{…}` value of `"<key>":` in a response body, exactly as sent, or None.

    Braces are balanced outside JSON strings (escapes honoured), so a brace inside a value cannot cut the node
    short; on responses without braces in strings this is the same substring the SDKs take.
    """
    marker = f'"{key}"'
    pos = body.find(marker)
    if pos < 0:
        return None
    i = pos + len(marker)
    n = len(body)
    while i < n and body[i] in " \t\r\n":
        i += 1
    if i >= n or body[i] != ":":
        return None
    i += 1
    while i < n and body[i] in " \t\r\n":
        i += 1
    if i >= n or body[i] != "{":
        return None
    start, depth, in_string, escaped = i, 0, False, False
    for j in range(start, n):
        c = body[j]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return body[start : j + 1]
    return None


def sign_response(key: str, node_json: str, private_key: rsa.RSAPrivateKey) -> str:
    """The sync response body `{"<key>":<node>,"sign":"…"}`: node first, sign right after (A4)."""
    signature = rsa_sign_b64(private_key, node_json.encode("utf-8"))
    return f'{{"{key}":{node_json},"sign":"{signature}"}}'


def verify_response_node(node_raw: str, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    return bool(signature) and rsa_verify_b64(public_key, node_raw.encode("utf-8"), signature)
