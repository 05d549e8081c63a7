"""One check of every query and path parameter of the `/v1` and `/admin` routes, run by their route classes.

A parameter holding a control or bidi override character (the set `tomato.core.text.SafeText` refuses in bodies)
is a `422 INVALID_REQUEST` naming it, before any handler sees it: no identifier, filter or cursor ever holds one,
and PostgreSQL cannot even be asked about a NUL (it refuses the statement, which was a 500). Route classes call it
after authentication, so a request without credentials still answers 401 first.
"""

from __future__ import annotations

from starlette.requests import Request

from tomato.core.errors import InvalidRequest
from tomato.core.text import control_character_issue


def refuse_control_characters(request: Request) -> None:
    found = first_issue(request)
    if found is not None:
        raise InvalidRequest.field(*found)


def first_issue(request: Request) -> tuple[str, str] | None:
    """The first parameter holding a refused character, and why (None: all clean)."""
    params: list[tuple[str, str]] = [(k, str(v)) for k, v in request.path_params.items()]
    if request.scope.get("query_string"):
        params += request.query_params.multi_items()
    for name, value in params:
        issue = control_character_issue(value)
        if issue is not None:
            return name, issue
    return None
