"""`SafeText`: the string type of every identifier, name and URL a client or operator sends.

It refuses NUL and the other control characters (Unicode category Cc: U+0000–U+001F, U+007F–U+009F; newlines and
tabs included) and the bidi embedding, override and isolate controls (U+202A–U+202E, U+2066–U+2069). PostgreSQL
cannot store NUL in text, so such a field would otherwise fail only at the database; control characters forge log
lines and break the channels' signed forms; bidi overrides make an order subject, a merchant name or a URL display
as something other than what it is. The refusal is a `422 INVALID_REQUEST` naming the field, like any other field
rule.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# the same set as a JSON Schema (ECMA-262) pattern for whole strings, for the OpenAPI document
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*$"


def control_character_issue(value: str) -> str | None:
    """The field issue for the first forbidden character of `value`, or None when it has none."""
    found = _FORBIDDEN.search(value)
    if found is None:
        return None
    return (
        "must not contain control or bidi override characters "
        f"(found U+{ord(found.group()):04X} at position {found.start()})"
    )


def refuse_control_characters(value: str) -> str:
    """Returns `value` unchanged, or raises the field error for its first forbidden character."""
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise PydanticCustomError(
            "control_character",
            "must not contain control or bidi override characters (found U+{code} at position {position})",
            {"code": f"{ord(found.group()):04X}", "position": found.start()},
        )
    return value


def document_rule(schema: dict[str, Any]) -> None:
    """Adds the rule to a JSON schema of a string (or to the string options of an `anyOf`), beside any pattern."""
    for option in schema.get("anyOf", [schema]):
        if option.get("type") != "string":
            continue
        if "pattern" not in option:
            option["pattern"] = NO_CONTROL_CHARACTERS
        elif option["pattern"] != NO_CONTROL_CHARACTERS:
            rules = option.setdefault("allOf", [])
            if {"pattern": NO_CONTROL_CHARACTERS} not in rules:
                rules.append({"pattern": NO_CONTROL_CHARACTERS})


class DocumentedRule:
    """Puts the rule into the type's JSON schema (validation stays with `refuse_control_characters`, whose error
    names the character and its position)."""

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        value: dict[str, Any] = handler(schema)
        document_rule(value)
        return value


SafeText = Annotated[str, AfterValidator(refuse_control_characters), DocumentedRule()]
