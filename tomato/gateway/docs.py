"""The API docs pages (`/docs` Swagger UI, `/redoc`) and `/openapi.json`, working with no internet: the Swagger UI
and ReDoc bundles are served from the `fastapi-offline` package's files under `/docs-assets` (we use only its files),
never from a CDN. `TOMATO_DOCS_ENABLED=false` leaves all of it out (404); `TOMATO_DOCS_TOKEN` puts it behind a
token (gateway.endpoint_guard)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from tomato.core.settings import Settings
from tomato.gateway.endpoint_guard import refusal

ASSETS = "/docs-assets"
OPENAPI = "/openapi.json"
REALM = "tomato docs"


def assets_dir() -> Path:
    """The package's static directory, found without importing the package (its module builds a FastAPI app)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package (Swagger UI and ReDoc assets) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def install_docs(app: FastAPI, settings: Settings) -> None:
    """Create the app with `openapi_url=None, docs_url=None, redoc_url=None`, then call this."""
    if not settings.docs_enabled:
        return
    token = settings.docs_token
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get(OPENAPI, include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        return refusal(request, token, realm=REALM, basic=True) or JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return refusal(request, token, realm=REALM, basic=True) or get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> Response:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return refusal(request, token, realm=REALM, basic=True) or get_redoc_html(
            openapi_url=f"{root}{OPENAPI}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
