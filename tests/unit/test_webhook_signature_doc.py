"""docs/webhooks.md's worked example is what the platform sends: its inputs are read from the doc, signed by the
worker's own function and compared with the headers the doc prints, and the doc's verification code is run on them
(issue 15 item 15) — so neither the example nor the snippet can drift from the code."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tomato.merchant.schemas import AppAuth
from tomato.merchant.signing import sign_webhook

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end != -1 else None]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def _example() -> tuple[dict[str, str], list[str], str]:
    section = _section(DOC.read_text(encoding="utf-8"), "### Worked example")
    inputs = dict(re.findall(r"^(\S.*?)\s{2,}(\S.*)$", _blocks(section, "text")[0], flags=re.M))
    headers = [line for block in _blocks(section, "text")[1:] for line in block.splitlines() if line]
    return inputs, headers, section


def _app(*secrets: str) -> AppAuth:
    return AppAuth(
        app_id="A1", mch_no="M1", sign_type="HMAC-SHA256", app_status="ACTIVE", merchant_status="ACTIVE",
        hmac_secrets=tuple(s.encode() for s in secrets), rsa_public_keys=(), pay_methods=frozenset(),
        amount_limit=100_000_000, notify_url=None,
    )  # fmt: skip


def test_the_worked_example_prints_the_exact_headers_the_worker_sends() -> None:
    inputs, headers, _ = _example()
    new, old = inputs["secret (newest key)"], inputs["secret (older key)"]
    ts, nonce, body = inputs["Tomato-Timestamp"], inputs["Tomato-Nonce"], inputs["body"].encode()
    one_key = sign_webhook(_app(new), None, ts, nonce, body)
    rotating = sign_webhook(_app(new, old), None, ts, nonce, body)
    assert headers == [f"Tomato-Signature: {one_key}", f"Tomato-Signature: {rotating}"]
    # pinned, so a change to the signing scheme itself cannot pass by rewriting the doc with it
    assert rotating == (
        "HMAC-SHA256 OV+a91bXntVotZse/uwWrTlPF/Klf5ap0PTGFa4ycf0=,"
        "HMAC-SHA256 FcCzNXGN6wCrZZwCxbjr6AdWrhp6cgC1u44GSW9GgtY="
    )


def test_the_documented_verifier_accepts_the_example_with_either_key() -> None:
    inputs, headers, section = _example()
    (code,) = _blocks(section, "python")
    scope: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), scope)  # the doc's own snippet, as a merchant would paste it
    verify: Callable[..., bool] = scope["verify_webhook"]
    new, old = inputs["secret (newest key)"], inputs["secret (older key)"]
    ts, body = int(inputs["Tomato-Timestamp"]), inputs["body"].encode()
    rotating = {
        "Tomato-Timestamp": inputs["Tomato-Timestamp"], "Tomato-Nonce": inputs["Tomato-Nonce"],
        "Tomato-Signature": headers[1].removeprefix("Tomato-Signature: "),
    }  # fmt: skip
    assert verify(rotating, body, [old], now=ts + 10)  # not yet deployed the new key
    assert verify(rotating, body, [new], now=ts + 10)
    assert not verify(rotating, body, ["some-other-secret"], now=ts + 10)
    assert not verify(rotating, body.replace(b"1234", b"1235"), [new, old], now=ts + 10)
    assert not verify(rotating, body, [new], now=ts + 301)  # too old: a replay
