"""The audit trail's pure rules: what is redacted, and that every mutating /admin route records its action."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute

from tomato.gateway.routers import admin as admin_routers
from tomato.merchant.audit import REDACTED, redact

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def test_secret_named_keys_are_redacted_at_any_depth() -> None:
    view = {
        "app": {"app_id": "A1", "keys": [{"key_id": "K1", "status": "ACTIVE"}]},
        "secret": "s",
        "token": "tpk_x",
        "token_id": "tok_0123456789abcdef",
        "config": {
            "private_key_pem": "PEM", "api_v3_key": "K" * 32, "api_v2_key": "V" * 32, "alipay_public_key_pem": "PUB",
            "appid": "wx",
        },
        "webhook_secret": "w",
        "hmac_secrets": ["a", "b"],
        "refresh_token": "r",
        "secret_ciphertext": "v1:…",
        "at": datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
    }
    assert redact(view) == {
        "app": {"app_id": "A1", "keys": [{"key_id": "K1", "status": "ACTIVE"}]},
        "secret": REDACTED,
        "token": REDACTED,
        "token_id": "tok_0123456789abcdef",  # an id is not a secret
        "config": {
            "private_key_pem": REDACTED, "api_v3_key": REDACTED, "api_v2_key": REDACTED, "alipay_public_key_pem": "PUB",
            "appid": "wx",
        },
        "webhook_secret": REDACTED,
        "hmac_secrets": REDACTED,
        "refresh_token": REDACTED,
        "secret_ciphertext": REDACTED,
        "at": "2026-12-06T10:00:00Z",
    }


def test_the_acting_token_is_scrubbed_from_every_string() -> None:
    token = "tpk_operator_abc"
    assert redact({"note": f"pasted {token}!", "list": [token, 1, None, True]}, scrub=token) == {
        "note": f"pasted {REDACTED}!",
        "list": [REDACTED, 1, None, True],
    }


def _calls_audited(fn: Callable[..., Any], depth: int = 0) -> bool:
    """True when `fn` calls `audited(...)`, itself or through a helper of its own module."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    if "audited" in called:
        return True
    module = inspect.getmodule(fn)
    helpers = [getattr(module, name) for name in called if name.startswith("_") and hasattr(module, name)]
    return depth < 2 and any(inspect.isfunction(h) and _calls_audited(h, depth + 1) for h in helpers)


def _admin_routes() -> list[APIRoute]:
    """Every route of every router in tomato.gateway.routers.admin: a router module added later is covered too."""
    found = []
    for info in pkgutil.iter_modules(admin_routers.__path__):
        module = importlib.import_module(f"{admin_routers.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, APIRouter):
                found += [r for r in value.routes if isinstance(r, APIRoute)]
    return found


def test_every_mutating_admin_route_records_an_audit_row() -> None:
    routes = [r for r in _admin_routes() if r.methods & MUTATING]
    assert len(routes) > 25
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if not _calls_audited(r.endpoint)]
    assert missing == []
