"""The OpenAPI docs page at ``/docs``, rendered by Swagger UI served from the package.

Swagger UI's dist files come from the ``swagger-ui-py`` distribution (import
name ``swagger_ui``, Apache-2.0, Swagger UI 5.x, which renders the OpenAPI 3.1
document that FastAPI generates). Only the files the page needs are served,
under ``/docs/assets/``, so the page loads nothing from another origin and
works under the same Content-Security-Policy as the rest of the service.

The page starts Swagger UI from ``/static/docs.js`` because that policy
allows no inline script, which is why FastAPI's ``get_swagger_ui_html`` (it
writes an inline script) is not used.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import PathLike, StaticFiles
from starlette.types import Scope

from iocscope.errors import ConfigError

SWAGGER_UI_PACKAGE = "swagger_ui"
ASSETS_PATH = "/docs/assets"
# The dist folder also contains Swagger Editor and a sample initializer that
# points at a public demo API. Neither is served.
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"})

router = APIRouter(include_in_schema=False)

_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>iocscope API</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


class SwaggerUiAssets(StaticFiles):
    """Static files limited to the names in ``ASSETS``, revalidated by ETag on each load."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in ASSETS:
            return "", None
        return super().lookup_path(path)

    def file_response(
        self, full_path: PathLike, stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if Path(full_path).name == "LICENSE":
            # The name has no suffix to guess the type from, and with nosniff a
            # browser would download the file instead of showing it.
            response.headers["Content-Type"] = "text/plain; charset=utf-8"
        # The bundle is about 1.5 MB, so the browser may keep it and revalidate
        # with If-None-Match, instead of the no-store that other responses get.
        response.headers["Cache-Control"] = "no-cache"
        return response


def swagger_ui_dir() -> Path:
    """Return the folder of Swagger UI's dist files; raise ConfigError when it is missing."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    folder = Path(locations[0]) / "static" if locations else None
    if folder is None or not (folder / "swagger-ui-bundle.js").is_file():
        raise ConfigError(
            "the Swagger UI files of /docs are missing: reinstall iocscope, or run "
            "pip install swagger-ui-py"
        )
    return folder


def mount_docs(app: FastAPI) -> None:
    """Add ``/docs`` and its assets to ``app``; raise ConfigError when Swagger UI is missing."""
    app.include_router(router)
    app.mount(ASSETS_PATH, SwaggerUiAssets(directory=swagger_ui_dir()), name="swagger-ui")


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_DOCS_PAGE)
