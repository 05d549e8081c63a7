"""Schemathesis hooks for tools/fuzz.py: every `/v1` request is signed as a merchant's client would sign it.

The signature covers the exact bytes sent (docs/api.md, "Signing a request"), so it is computed on the prepared
request — method, path and query as `requests` sends them, and the serialised body — through a `requests` auth
object that the `before_call` hook hands to the transport. The app comes from the environment (set by the driver
from `tomato dev`'s credentials file): TOMATO_FUZZ_APP_ID and TOMATO_FUZZ_APP_SECRET.

Generated identifiers almost never name something that exists, so every request would stop at a 404. Path
parameters are therefore drawn either as generated or as the identifiers of the seeded stack (TOMATO_FUZZ_KNOWN, a
JSON object of parameter name to value: the demo merchant, app and a channel account), which lets the fuzzer reach
the handlers' own logic with generated bodies and queries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any

import requests
import schemathesis
from hypothesis import strategies as st


class TomatoSigner(requests.auth.AuthBase):
    """Adds `Tomato-App-Id`, `Tomato-Timestamp`, `Tomato-Nonce` and an HMAC-SHA256 `Tomato-Signature`."""

    def __init__(self, app_id: str, secret: str) -> None:
        self.app_id = app_id
        self.secret = secret.encode()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = r.body or b""
        body = raw.encode() if isinstance(raw, str) else raw
        if not isinstance(body, bytes):  # a streamed body: never produced by Schemathesis for JSON operations
            raise TypeError("cannot sign a streamed body")
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        message = b"\n".join(
            [str(r.method).encode(), r.path_url.encode("latin-1"), timestamp.encode(), nonce.encode(), body]
        )
        mac = hmac.new(self.secret, message + b"\n", hashlib.sha256).digest()
        r.headers["Tomato-App-Id"] = self.app_id
        r.headers["Tomato-Timestamp"] = timestamp
        r.headers["Tomato-Nonce"] = nonce
        r.headers["Tomato-Signature"] = "HMAC-SHA256 " + base64.b64encode(mac).decode()
        return r


_KNOWN: dict[str, str] = json.loads(os.environ.get("TOMATO_FUZZ_KNOWN", "{}"))
_SIGNER = TomatoSigner(os.environ.get("TOMATO_FUZZ_APP_ID", ""), os.environ.get("TOMATO_FUZZ_APP_SECRET", ""))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.path.startswith("/v1/") and _SIGNER.app_id:
        kwargs["auth"] = _SIGNER


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    known = {name: _KNOWN[name] for name in path_parameters or {} if name in _KNOWN}
    if not known:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, **known}])
