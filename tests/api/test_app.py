"""The app as a whole: authentication, error bodies, security headers and CORS."""

from __future__ import annotations

import logging

import httpx
import pytest

from iocscope.api.app import create_app
from iocscope.api.auth import revoke_key
from iocscope.api.settings import ApiSettings
from tests.api.conftest import ApiEnv, app_client

PROTECTED = [
    ("POST", "/v1/ioc/enrich"),
    ("POST", "/v1/ioc/enrich/batch"),
    ("POST", "/api/v1/enrichment/lookup"),
    ("POST", "/v1/alerts/enrich"),
    ("GET", "/v1/sources"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_key_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={"value": "8.8.8.8"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == (
        "missing API key: send it in the X-API-Key header or as Authorization: Bearer"
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "iocs_abc_def"},
        {"X-API-Key": "not-a-key"},
        {"Authorization": "Bearer iocs_abc_def"},
    ],
)
async def test_invalid_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/v1/sources", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked API key"
    assert response.json()["code"] == "unauthorized"


async def test_revoked_key_is_401(client: httpx.AsyncClient, env: ApiEnv) -> None:
    assert (await client.get("/readyz", headers=env.headers)).status_code == 200
    revoke_key(env.keys_file, "tests")
    response = await client.get("/readyz", headers=env.headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid or revoked API key"


async def test_bearer_key_is_accepted(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.get("/readyz", headers={"Authorization": f"Bearer {env.key}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/", "/static/app.js", "/docs", "/openapi.json"])
async def test_open_paths_need_no_key(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200


async def test_healthz_body(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_page_has_strict_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self'; script-src 'self'; style-src 'self';")
    assert "frame-ancestors 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["content-type"].startswith("text/html")


async def test_page_loads_nothing_from_other_origins(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert "http://" not in page
    assert "https://" not in page
    script = (await client.get("/static/app.js")).text
    assert "innerHTML" not in script
    assert 'rel = "noopener noreferrer"' in script


async def test_error_has_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/sources")
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert len(body["request_id"]) == 16


async def test_unknown_path_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_wrong_method_is_405(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.get("/v1/ioc/enrich", headers=env.headers)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "invalid request: body.value: Field required"),
        ({"value": ""}, "invalid request: body.value: String should have at least 1 character"),
        (
            {"value": "8.8.8.8", "type": "cve"},
            "invalid request: body.type: Input should be 'ipv4', 'ipv6', 'domain', 'url', "
            "'md5', 'sha1', 'sha256', 'sha512', 'email', 'ip', 'hash' or 'hostname'",
        ),
    ],
)
async def test_invalid_body_is_422(
    client: httpx.AsyncClient, env: ApiEnv, body: dict[str, str], detail: str
) -> None:
    response = await client.post("/v1/ioc/enrich", json=body, headers=env.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == detail
    assert response.json()["code"] == "invalid_request"


async def test_malformed_json_is_422(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/v1/ioc/enrich",
        content=b'{"value": ',
        headers={**env.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid request: body.")


async def test_unexpected_error_is_generic_500(
    env: ApiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(env.settings)

    @app.get("/v1/fails")
    async def fails() -> None:
        raise RuntimeError("secret internal detail")

    with caplog.at_level(logging.ERROR, logger="iocscope.api.middleware"):
        async with app_client(app) as client:
            response = await client.get("/v1/fails")
    body = response.json()
    assert response.status_code == 500
    assert body["code"] == "internal_error"
    assert body["detail"] == (
        f"internal error; the server log has the details under id {body['request_id']}"
    )
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] in caplog.text
    assert "secret internal detail" in caplog.text


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/v1/ioc/enrich",
        headers={"Origin": "https://soc.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_configured_origin(env: ApiEnv) -> None:
    api = ApiSettings(cors_origins=("https://soc.example",))
    async with app_client(create_app(env.settings, api)) as client:
        allowed = await client.options(
            "/v1/ioc/enrich",
            headers={
                "Origin": "https://soc.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-api-key, content-type",
            },
        )
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://soc.example"
    assert "access-control-allow-origin" not in other.headers


async def test_key_never_reaches_logs(
    client: httpx.AsyncClient, env: ApiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await client.post("/v1/ioc/enrich", json={"value": "8.8.8.8"}, headers=env.headers)
        await client.post("/v1/ioc/enrich", json={"value": "bad value"}, headers=env.headers)
        await client.get("/readyz", headers={"X-API-Key": env.key + "x"})
    secret = env.key.split("_", 2)[2]
    assert secret not in caplog.text
