"""The OpenAPI docs page and the Swagger UI files it loads from the package."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pytest

from iocscope.api import routes_docs
from iocscope.api.middleware import STRICT_CSP
from iocscope.api.routes_docs import ASSETS_PATH, swagger_ui_dir
from iocscope.errors import ConfigError


class ResourceLinks(HTMLParser):
    """Collect the src of every script and the href of every link element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        self.urls.extend(value or "" for name, value in attrs if name == wanted)


def resource_urls(page: str) -> list[str]:
    parser = ResourceLinks()
    parser.feed(page)
    return parser.urls


async def test_docs_loads_only_local_urls(client: httpx.AsyncClient) -> None:
    urls = resource_urls((await client.get("/docs")).text)
    assert urls == [
        f"{ASSETS_PATH}/swagger-ui.css",
        f"{ASSETS_PATH}/favicon-32x32.png",
        f"{ASSETS_PATH}/swagger-ui-bundle.js",
        "/static/docs.js",
    ]
    for url in urls:
        assert url.startswith("/")
        assert not url.startswith("//")


async def test_docs_resources_are_served(client: httpx.AsyncClient) -> None:
    urls = resource_urls((await client.get("/docs")).text)
    for url in urls:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.content, url


async def test_docs_has_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    policy = response.headers["Content-Security-Policy"]
    assert policy == STRICT_CSP
    assert "http" not in policy
    assert "'unsafe-inline'" not in policy
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon-32x32.png", "image/png"),
        ("LICENSE", "text/plain"),
    ],
)
async def test_asset_media_type(client: httpx.AsyncClient, name: str, media_type: str) -> None:
    response = await client.get(f"{ASSETS_PATH}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == media_type


@pytest.mark.parametrize(
    "name",
    [
        "swagger-initializer.js",
        "swagger-editor-bundle.js",
        "index.css",
        "../core.py",
        "..%2Fcore.py",
        "",
    ],
)
async def test_unlisted_asset_is_404(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"{ASSETS_PATH}/{name}")
    assert response.status_code == 404


async def test_asset_revalidates_by_etag(client: httpx.AsyncClient) -> None:
    first = await client.get(f"{ASSETS_PATH}/swagger-ui.css")
    again = await client.get(
        f"{ASSETS_PATH}/swagger-ui.css", headers={"If-None-Match": first.headers["ETag"]}
    )
    assert first.headers["Cache-Control"] == "no-cache"
    assert again.status_code == 304
    assert again.content == b""


async def test_swagger_ui_licence_is_apache(client: httpx.AsyncClient) -> None:
    licence = (await client.get(f"{ASSETS_PATH}/LICENSE")).text
    assert "Apache License" in licence
    assert "Version 2.0" in licence


def test_swagger_ui_dir_has_bundle() -> None:
    assert (swagger_ui_dir() / "swagger-ui-bundle.js").is_file()


def test_missing_swagger_ui_is_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_docs, "SWAGGER_UI_PACKAGE", "iocscope_no_such_package")
    with pytest.raises(ConfigError) as caught:
        swagger_ui_dir()
    assert str(caught.value) == (
        "the Swagger UI files of /docs are missing: reinstall iocscope, or run "
        "pip install swagger-ui-py"
    )
