"""The OpenAPI document (`GET /openapi.json`), completed so that it tells the truth about every `/v1` and `/admin`
operation (docs/openapi.md).

FastAPI describes what a route declares: its parameters, body model and success answer. Everything the route
classes add around the handler is added here, for every operation under `/v1` and `/admin` — so a new route gets
it without doing anything:

- its security: the four signed `Tomato-*` headers for `/v1` (and the signed response headers), the bearer token
  for `/admin` (the roles its route class accepts are in `x-roles`, put there by `deps.admin_route`);
- the error answers its route class can give, each with the one error body (`Error`), from the rules below;
- the optional `Idempotency-Key` header of every `/v1` POST;
- the rule of gateway.params on every string query and path parameter (no control or bidi override characters),
  and the meaning of the common ones (`order_no`, `mch_no`, `cursor`, …) where the route did not describe them;
- FastAPI's own 422 body (`HTTPValidationError`) replaced by ours.

What depends on the handler (a 409 of the service, a 502 of a channel) the route declares itself with
`responses=errors(409, 502)`; its body is filled in here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tomato.core.text import document_rule

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "INVALID_REQUEST: the body was not JSON",
    401: "authentication failed (SIGNATURE_INVALID, TIMESTAMP_EXPIRED, NONCE_REUSED, APP_NOT_FOUND, UNAUTHENTICATED)",
    403: "not allowed (MERCHANT_FROZEN, APP_DISABLED, PAY_METHOD_NOT_ENABLED; FORBIDDEN: a token of another role)",
    404: "no such resource for this caller (ORDER_NOT_FOUND, REFUND_NOT_FOUND, EVENT_NOT_FOUND, NOT_FOUND)",
    409: "conflict with the current state (IDEMPOTENCY_KEY_CONFLICT, *_CONFLICT, REFUND_AMOUNT_EXCEEDED, …)",
    413: "PAYLOAD_TOO_LARGE: the body is over 64 KiB",
    422: "INVALID_REQUEST: a field, header or parameter breaks its rule; `details` name each",
    429: "RATE_LIMITED: over the app's rate; `Retry-After` says when to try again",
    502: "CHANNEL_ERROR: the payment channel refused or did not answer in time",
    503: "SERVICE_UNAVAILABLE (a store the safety checks need is down; `Retry-After`) or NO_CHANNEL_AVAILABLE",
}

# What the route classes themselves can answer (gateway.signed_route.SignedRoute, gateway.deps.admin_route):
V1_ALWAYS = (401, 403, 413, 422, 429, 503)  # auth, status, body cap, parameters, rate limit, nonce store
ADMIN_ALWAYS = (401, 403)  # token, role

SIGNED_SCHEMES = ("TomatoAppId", "TomatoTimestamp", "TomatoNonce", "TomatoSignature")
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "TomatoAppId": {"type": "apiKey", "in": "header", "name": "Tomato-App-Id", "description": "your app id (A…)"},
    "TomatoTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": "Tomato-Timestamp",
        "description": "Unix seconds, 1-12 ASCII digits, within ±300 s of the server clock",
    },
    "TomatoNonce": {
        "type": "apiKey",
        "in": "header",
        "name": "Tomato-Nonce",
        "description": "16-64 characters of [A-Za-z0-9], never reused within 15 minutes",
    },
    "TomatoSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Tomato-Signature",
        "description": "`HMAC-SHA256 <base64>` or `RSA-SHA256 <base64>` over the bytes "
        "METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n (docs/api.md, Signing a request)",
    },
    "AdminBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "an admin token (`tomato admin create-token --role operator|finance`); see `x-roles`",
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "description": "what went wrong",
            "required": ["code", "message", "request_id"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "description": "stable machine-readable code (docs/api.md, Errors)"},
                "message": {"type": "string", "description": "for developers; its wording may change"},
                "request_id": {"type": "string", "description": "also in the X-Request-Id header"},
                "details": {
                    "type": "array",
                    "description": "for INVALID_REQUEST: each field, header or parameter that broke its rule",
                    "items": {
                        "type": "object",
                        "required": ["field", "issue"],
                        "properties": {
                            "field": {
                                "type": "string",
                                "description": "where: a body field as a dotted path (`payer.openid`), or a header "
                                "or parameter name",
                            },
                            "issue": {"type": "string", "description": "the rule it broke"},
                        },
                    },
                },
            },
        }
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_SIGNED_HEADERS = {
    name: {"description": "the response signature (docs/api.md, Verifying a response)", "schema": {"type": "string"}}
    for name in ("Tomato-Timestamp", "Tomato-Nonce", "Tomato-Signature")
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "replays the first answer to the same body on this path within 24 h (docs/api.md)",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
}

# What each path and query parameter means, by (name, where) and, where one name means different things, by path.
# `complete` fills in the missing ones, so the routes stay short; a parameter neither here nor described by its
# route fails tests/unit/test_openapi_document.py.
PARAMETERS: dict[tuple[str, str], str] = {
    ("order_no", "path"): "the platform's order number (`P…`)",
    ("refund_no", "path"): "the platform's refund number (`R…`)",
    ("payout_no", "path"): "the platform's payout number (`W…`)",
    ("out_trade_no", "query"): "find the order by your own order number (then no list parameter is allowed)",
    ("out_refund_no", "query"): "find the refund by your own refund number (then no list parameter is allowed)",
    ("out_payout_no", "query"): "find the payout by your own payout number",
    ("mch_no", "path"): "the merchant's number (`M…`)",
    ("mch_no", "query"): "only those of this merchant (`M…`)",
    ("app_id", "path"): "the app's id (`A…`)",
    ("app_id", "query"): "only those of this app (`A…`)",
    ("key_id", "path"): "the id of one of the app's keys",
    ("account_id", "path"): "the channel account's id",
    ("channel_account_id", "query"): "only those of this channel account",
    ("rule_id", "path"): "the routing rule's id",
    ("delivery_id", "path"): "the webhook delivery's id",
    ("event_id", "query"): "only deliveries of this event (`E…`)",
    ("event_id", "path"): "the event's id (`E…`), as in the webhook's `id` and `Tomato-Event-Id`",
    ("journal_id", "path"): "the journal entry's id (`J…`)",
    ("batch_id", "query"): "only discrepancies found by this reconciliation batch (`RB…`)",
    ("kind", "query"): "only anomalies of this kind",
    ("type", "query"): "only discrepancies of this type",
    ("account", "query"): "only entries with a line on this ledger account (its code, e.g. `merchant_pending:M…`)",
    ("account_type", "query"): "only accounts of this type, e.g. `merchant_pending`",
    ("owner", "query"): "only accounts of this owner (a merchant number or a channel account id)",
    ("from", "query"): "first day, YYYY-MM-DD (default: today's business date)",
    ("to", "query"): "last day, YYYY-MM-DD, inclusive (default: 30 days after `from`; at most 366 days)",
    ("cursor", "query"): "`next_cursor` of the page before",
}
PARAMETERS_BY_PATH: dict[tuple[str, str, str], str] = {
    ("/v1/statements/{date}", "date", "path"): "the business date of the statement, YYYY-MM-DD",
    ("/admin/calendar/{date}", "date", "path"): "the day to set, YYYY-MM-DD",
    ("/admin/ledger/entries", "date", "query"): "only entries of this business date, YYYY-MM-DD",
    ("/admin/settlements", "date", "query"): "only settlement batches of this business date, YYYY-MM-DD",
    ("/admin/reconciliation/batches", "date", "query"): "only batches of this statement date, YYYY-MM-DD",
    ("/admin/reconciliation/batches", "status", "query"): "only batches in this status",
    ("/admin/reconciliation/discrepancies", "status", "query"): "only discrepancies in this status",
    ("/admin/deliveries", "status", "query"): "only deliveries in this status",
}


def describe_parameter(path: str, param: dict[str, Any]) -> None:
    """Gives `param` its meaning from the tables above when its route did not describe it."""
    name, where = param.get("name", ""), param.get("in", "")
    text = PARAMETERS_BY_PATH.get((path, name, where)) or PARAMETERS.get((name, where))
    if text and not param.get("description"):
        param["description"] = text


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error statuses its handler can answer besides its route class's own."""
    return {status: {"description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def area(path: str) -> str | None:
    if path == "/v1" or path.startswith("/v1/"):
        return "v1"
    if path == "/admin" or path.startswith("/admin/"):
        return "admin"
    return None


def statuses_for(path: str, method: str, op: dict[str, Any]) -> set[int]:
    """The error statuses the route class of `path` can answer for this operation, whatever its handler does."""
    kind = area(path)
    params = op.get("parameters", [])
    has_body = "requestBody" in op
    has_path_params = any(p.get("in") == "path" for p in params)
    found: set[int] = set()
    if kind == "v1":
        found |= set(V1_ALWAYS)
        if method == "post":
            found.add(409)  # Idempotency-Key used with another body, or still running
    elif kind == "admin":
        found |= set(ADMIN_ALWAYS)
        if params or has_body:
            found.add(422)
    if kind is not None:
        if has_body:
            found |= {400, 422}
        if has_path_params:
            found.add(404)
    return found


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, ops in schema.get("paths", {}).items():
        kind = area(path)
        for method, op in ops.items():
            responses: dict[str, Any] = op.setdefault("responses", {})
            for status in statuses_for(path, method, op):
                responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400 and (kind is not None or code == "422"):
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
                    if code in ("429", "503"):
                        response.setdefault("headers", {}).update(_RETRY_AFTER)
            if kind is not None:
                for param in op.get("parameters", []):
                    describe_parameter(path, param)
                    if param.get("in") in ("path", "query"):
                        document_rule(param.get("schema", {}))  # gateway.params refuses them
            if kind == "v1":
                op["security"] = [dict.fromkeys(SIGNED_SCHEMES, [])]
                for response in responses.values():
                    response.setdefault("headers", {}).update(_SIGNED_HEADERS)
                if method == "post":
                    op.setdefault("parameters", []).append(IDEMPOTENCY_KEY)
            elif kind == "admin":
                op["security"] = [{"AdminBearer": []}]
                allowed = op.setdefault("x-roles", [])  # set by the admin route class
                if allowed:
                    who = " or ".join(allowed)
                    op["description"] = (op.get("description", "") + f"\n\nNeeds the {who} role.").strip()
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install(app: FastAPI, description: str = "") -> None:
    """Serves the completed document at `app.openapi_url` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=description, routes=app.routes)
            app.openapi_schema = complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operations(schema: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of a document."""
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            yield path, method, op
