"""Issue 16: the OpenAPI document tells the truth about every `/v1` and `/admin` operation — its security, every
error status its route class can answer with the one error body, typed answers and the constraints the server
enforces. The checks walk the whole document, so a route added later is held to the same rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tomato.gateway.app import create_app
from tomato.gateway.openapi import SIGNED_SCHEMES, operations

ERROR_REF = {"$ref": "#/components/schemas/Error"}


async def _no_container() -> Any:
    raise AssertionError("the document needs no backends")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(_no_container).openapi()


def ours(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [(p, m, op) for p, m, op in operations(doc) if p.startswith(("/v1/", "/admin/"))]
    assert len(found) >= 30  # the document does list the API
    return found


def test_every_operation_declares_its_security(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert {schemes[n]["name"] for n in SIGNED_SCHEMES} == {
        "Tomato-App-Id",
        "Tomato-Timestamp",
        "Tomato-Nonce",
        "Tomato-Signature",
    }
    assert {(schemes[n]["type"], schemes[n]["in"]) for n in SIGNED_SCHEMES} == {("apiKey", "header")}
    assert schemes["AdminBearer"] == schemes["AdminBearer"] | {"type": "http", "scheme": "bearer"}
    for path, method, op in ours(doc):
        if path.startswith("/v1/"):
            assert op["security"] == [dict.fromkeys(SIGNED_SCHEMES, [])], (method, path)
        else:
            assert op["security"] == [{"AdminBearer": []}], (method, path)
            assert set(op["x-roles"]) <= {"operator", "finance"} and op["x-roles"], (method, path)


def test_every_operation_declares_the_errors_of_its_route_class(doc: dict[str, Any]) -> None:
    for path, method, op in ours(doc):
        codes = set(op["responses"])
        params = op.get("parameters", [])
        need = {"401", "403"}
        if path.startswith("/v1/"):
            need |= {"413", "422", "429", "503"} | ({"409"} if method == "post" else set())
        if params or "requestBody" in op:
            need.add("422")
        if "requestBody" in op:
            need.add("400")
        if any(p["in"] == "path" for p in params):
            need.add("404")
        assert need <= codes, (method, path, need - codes)
        for code, response in op["responses"].items():
            if int(code) >= 400:
                assert response["content"] == {"application/json": {"schema": ERROR_REF}}, (method, path, code)


def test_the_error_body_is_the_one_the_server_sends(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message", "request_id"]
    assert error["properties"]["details"]["items"]["required"] == ["field", "issue"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's 422 body is never sent


def test_every_answer_is_typed_and_every_list_is_a_page(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for path, method, op in ours(doc):
        for code, response in op["responses"].items():
            if code.startswith("2") and code != "204":
                content = response["content"]
                if set(content) == {"text/csv"}:  # statements and summaries: CSV files, not JSON documents
                    continue
                refs = answer_refs(content["application/json"]["schema"])
                assert refs and all(refs), (method, path, code)
        if any(p["name"] == "cursor" for p in op.get("parameters", [])):
            # a path that also finds one row by the merchant's number answers that row or a page (`anyOf`)
            answers = [
                schemas[r.split("/")[-1]]
                for r in answer_refs(op["responses"]["200"]["content"]["application/json"]["schema"])
            ]
            pages = [a for a in answers if a.get("required") == ["data", "next_cursor"]]
            assert len(pages) == 1, (method, path)
            assert "$ref" in pages[0]["properties"]["data"]["items"], (method, path)


def answer_refs(schema: dict[str, Any]) -> list[str | None]:
    """The `$ref` of a typed answer, or of each branch of an `anyOf` of typed answers (None: an untyped one)."""
    return [branch.get("$ref") for branch in schema.get("anyOf", [schema])]


def test_string_parameters_refuse_control_characters(doc: dict[str, Any]) -> None:
    import re

    from tomato.core.text import NO_CONTROL_CHARACTERS

    assert re.fullmatch(NO_CONTROL_CHARACTERS, "Mé-1_x") and not re.search(NO_CONTROL_CHARACTERS, "a\x00b")
    assert not re.search(NO_CONTROL_CHARACTERS, "a\u202eb") and not re.search(NO_CONTROL_CHARACTERS, "\x85")
    for path, method, op in ours(doc):
        for p in op.get("parameters", []):
            for schema in p["schema"].get("anyOf", [p["schema"]]):
                if p["in"] in ("path", "query") and schema.get("type") == "string":
                    rules = [schema.get("pattern")] + [a["pattern"] for a in schema.get("allOf", [])]
                    assert NO_CONTROL_CHARACTERS in rules, (method, path, p["name"])


def test_limits_are_1_to_100(doc: dict[str, Any]) -> None:
    limits = [(path, p) for path, _, op in ours(doc) for p in op.get("parameters", []) if p["name"] == "limit"]
    assert len(limits) >= 5
    for path, p in limits:
        schema = p["schema"]["anyOf"][0]
        assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 100), path


def test_the_constraints_the_server_enforces_are_in_the_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    refund = schemas["RefundCreate"]
    assert [v["required"] for v in refund["oneOf"]] == [["order_no"], ["out_trade_no"]]
    rule = schemas["RoutingRuleCreate"]
    assert {"required": ["time_start", "time_end"]}.items() <= rule["anyOf"][1].items()
    client_ip = schemas["PayOrderCreate"]["properties"]["client_ip"]["anyOf"]
    assert [s.get("format") for s in client_ip] == ["ipv4", "ipv6", None]
    close = doc["paths"]["/v1/pay/orders/{order_no}/close"]["post"]["requestBody"]["content"]["application/json"]
    closed = schemas[close["schema"]["anyOf"][0]["$ref"].split("/")[-1]]
    assert closed["maxProperties"] == 0 and closed["additionalProperties"] is False
    account = schemas["ChannelAccountCreate"]
    assert account["discriminator"] == {"propertyName": "channel"}
    variants = {v["properties"]["channel"]["const"]: v["properties"]["config"] for v in account["oneOf"]}
    assert set(variants) == {"alipay", "wechat", "bank"}
    assert "gateway_url" in variants["alipay"]["required"]
    direct, partner = variants["wechat"]["oneOf"]  # a WeChat account is a merchant's own, or a service provider's
    assert "api_v3_key" in direct["required"] and {"mode", "sp_mchid", "sp_appid"} <= set(partner["required"])
    assert "mer_id" in variants["bank"]["required"]


async def test_every_operation_goes_through_its_route_class(doc: dict[str, Any]) -> None:
    """A route added without `SignedRoute` or `admin_route` would answer an unauthenticated request; each must
    refuse it with 401 in the error body."""
    app = create_app(_no_container)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for path, method, _ in ours(doc):
            url = path.replace("{", "").replace("}", "")  # any value will do: the check comes first
            r = await client.request(method.upper(), url)
            assert r.status_code == 401, (method, path, r.text)
            assert set(r.json()["error"]) >= {"code", "message", "request_id"}, (method, path)


def undescribed(schema: Any, where: str, inherited: frozenset[str] = frozenset()) -> list[str]:
    """Every property under `schema` (nested objects, items, maps and unions too) without a description. A property
    that a `oneOf`/`anyOf`/`allOf` branch only constrains further is described where its object declares it."""
    found: list[str] = []
    if isinstance(schema, list):
        for i, branch in enumerate(schema):
            found += undescribed(branch, f"{where}[{i}]", inherited)
        return found
    if not isinstance(schema, dict):
        return found
    described = set(inherited)
    for name, prop in (schema.get("properties") or {}).items():
        text = prop.get("description", "") if isinstance(prop, dict) else ""
        if text.strip():
            described.add(name)
        elif name not in inherited:
            found.append(f"{where}.{name}")
        found += undescribed(prop, f"{where}.{name}")
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            found += undescribed(schema[key], f"{where}.{key}", frozenset(described))
    for key in ("items", "additionalProperties"):
        if key in schema:
            found += undescribed(schema[key], f"{where}.{key}")
    return found


def test_the_walk_finds_what_is_missing() -> None:
    """The checker itself: a nested, an item and a union property without a description are all found."""
    schema = {
        "properties": {
            "a": {"description": "the a", "properties": {"b": {"type": "string"}}},
            "c": {"description": "list", "items": {"properties": {"d": {}}}},
            "e": {"description": "described once", "type": "string"},
        },
        "oneOf": [{"properties": {"e": {"type": "string"}, "f": {"type": "null"}}}],
    }
    assert undescribed(schema, "S") == ["S.a.b", "S.c.items.d", "S.oneOf[0].f"]


def test_every_property_of_every_schema_is_described(doc: dict[str, Any]) -> None:
    """Issue 19: the document is a reference on its own — each field says what it means, not just its name."""
    schemas = doc["components"]["schemas"]
    assert len(schemas) >= 60
    missing = [p for name, schema in schemas.items() for p in undescribed(schema, name)]
    assert not missing, f"properties without a description (add Field(description=…)): {missing}"

    def texts(schema: Any, where: str) -> list[tuple[str, str, str]]:
        found: list[tuple[str, str, str]] = []
        if isinstance(schema, dict):
            for name, prop in (schema.get("properties") or {}).items():
                if isinstance(prop, dict) and "description" in prop:
                    found.append((where, name, prop["description"]))
            for value in schema.values():
                found += texts(value, where)
        elif isinstance(schema, list):
            for value in schema:
                found += texts(value, where)
        return found

    for where, name, text in (t for n, s in schemas.items() for t in texts(s, n)):
        words = text.lower().replace("`", "").replace("_", " ").strip(" .")
        assert words not in {name.lower(), name.lower().replace("_", " "), f"the {name.lower().replace('_', ' ')}"}, (
            where,
            name,
            text,
        )
        assert len(text.split()) >= 2, (where, name, text)


def test_every_parameter_is_described(doc: dict[str, Any]) -> None:
    for path, method, op in ours(doc):
        for p in op.get("parameters", []):
            assert p.get("description", "").strip(), (method, path, p["name"])


def test_every_list_answer_references_its_item_schema(doc: dict[str, Any]) -> None:
    """Every JSON answer with a `data` list (paged or not) names its item type, and each paged one is exactly
    `{data: [Item], next_cursor}`."""
    schemas = doc["components"]["schemas"]
    lists = 0
    for path, method, op in ours(doc):
        answer = op["responses"].get("200", {}).get("content", {}).get("application/json")
        if answer is None:
            continue
        for ref in answer_refs(answer["schema"]):
            assert ref is not None, (method, path)
            body = schemas[ref.split("/")[-1]]
            data = body.get("properties", {}).get("data")
            if data is None or data.get("type") != "array":
                continue
            lists += 1
            item = data["items"].get("$ref", "")
            assert item.startswith("#/components/schemas/") and item.split("/")[-1] in schemas, (method, path)
            if "next_cursor" in body["properties"] or any(p["name"] == "cursor" for p in op.get("parameters", [])):
                assert body["required"] == ["data", "next_cursor"], (method, path)
                assert set(body["properties"]) == {"data", "next_cursor"}, (method, path)
                assert {"type": "null"} in body["properties"]["next_cursor"]["anyOf"], (method, path)
    assert lists >= 12
