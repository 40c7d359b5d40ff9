"""The analyst page at ``/``, its static files and the Swagger UI page at ``/docs``.

None of them needs a key: the page asks for one and keeps it in the
browser's sessionStorage, and the API checks it on each call.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI version loaded by /docs, the one FastAPI's own docs page uses.
SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"

router = APIRouter(include_in_schema=False)

_DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>iocscope API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_DOCS_PAGE)
