"""``/v1/ioc/enrich`` and ``/v1/ioc/enrich/batch`` with real feed data."""

from __future__ import annotations

import httpx
import pytest

from iocscope.api.app import create_app
from iocscope.api.schemas import BatchResponse, EnrichResponse
from iocscope.api.settings import ApiSettings
from tests.api.conftest import MALICIOUS_IP, SUSPICIOUS_IP, UNLISTED_IP, ApiEnv, app_client


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (MALICIOUS_IP, "malicious"),
        (SUSPICIOUS_IP, "suspicious"),
        (UNLISTED_IP, "unknown"),
        ("10.20.30.40", "unknown"),
        ("185[.]220[.]101[.]7", "malicious"),
    ],
)
async def test_enrich_verdicts(
    client: httpx.AsyncClient, env: ApiEnv, value: str, verdict: str
) -> None:
    response = await client.post("/v1/ioc/enrich", json={"value": value}, headers=env.headers)
    assert response.status_code == 200
    assert response.json()["verdict"] == verdict


async def test_enrich_record_shape(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/v1/ioc/enrich", json={"type": "ipv4", "value": MALICIOUS_IP}, headers=env.headers
    )
    body = response.json()
    EnrichResponse.model_validate(body)
    assert body["type"] == "ipv4"
    assert body["value"] == MALICIOUS_IP
    assert body["risk_score"] >= 70
    assert body["sources_flagged"] == 2
    assert body["flagged_by"] == ["ipsum", "internetdb"]
    assert body["sources_queried"] >= 2
    assert body["reasons"][0].startswith("ipsum: listed by 9 of the IPsum blocklists")


async def test_private_address_asks_no_source(client: httpx.AsyncClient, env: ApiEnv) -> None:
    body = (
        await client.post("/v1/ioc/enrich", json={"value": "192.168.1.10"}, headers=env.headers)
    ).json()
    assert body["public"] is False
    assert body["sources"] == []
    assert body["reasons"][0].startswith("not public (private)")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"value": "not an ioc"},
            "invalid indicator 'not an ioc': the value contains white space or control characters",
        ),
        (
            {"type": "ipv4", "value": "example.com"},
            "invalid indicator 'example.com': an IPv4 address has four decimal octets "
            "separated by dots",
        ),
        (
            {"type": "ip", "value": "example.com"},
            "invalid indicator 'example.com': type 'ip' expects an IP address, but the value "
            "is domain",
        ),
        (
            {"type": "hash", "value": "8.8.8.8"},
            "invalid indicator '8.8.8.8': type 'hash' expects an MD5, SHA-1, SHA-256 or "
            "SHA-512 hash, but the value is ipv4",
        ),
    ],
)
async def test_invalid_indicator_is_422(
    client: httpx.AsyncClient, env: ApiEnv, body: dict[str, str], detail: str
) -> None:
    response = await client.post("/v1/ioc/enrich", json=body, headers=env.headers)
    assert response.status_code == 422
    assert response.json()["detail"] == detail
    assert response.json()["code"] == "invalid_indicator"


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("ip", MALICIOUS_IP, "ipv4"),
        ("IP", "2001:4860:4860::8888", "ipv6"),
        ("hash", "d41d8cd98f00b204e9800998ecf8427e", "md5"),
        ("hostname", "Example.COM", "domain"),
        (None, "hxxps://example[.]com/a", "url"),
    ],
)
async def test_generic_type_names(
    client: httpx.AsyncClient, env: ApiEnv, type_name: str | None, value: str, expected: str
) -> None:
    response = await client.post(
        "/v1/ioc/enrich", json={"type": type_name, "value": value}, headers=env.headers
    )
    assert response.status_code == 200
    assert response.json()["type"] == expected


async def test_batch_keeps_order_and_reports_invalid(
    client: httpx.AsyncClient, env: ApiEnv
) -> None:
    indicators = [MALICIOUS_IP, {"type": "ip", "value": "bad value"}, SUSPICIOUS_IP]
    response = await client.post(
        "/v1/ioc/enrich/batch", json={"indicators": indicators}, headers=env.headers
    )
    body = response.json()
    BatchResponse.model_validate(body)
    assert response.status_code == 200
    assert body["count"] == 3
    assert [entry.get("verdict") for entry in body["results"]] == [
        "malicious",
        None,
        "suspicious",
    ]
    assert body["results"][1] == {
        "value": "bad value",
        "type": "ip",
        "error": {
            "code": "invalid_indicator",
            "message": "invalid indicator 'bad value': the value contains white space or "
            "control characters",
        },
    }


async def test_batch_over_limit_is_413(env: ApiEnv) -> None:
    api = ApiSettings(batch_limit=3)
    async with app_client(create_app(env.settings, api)) as client:
        response = await client.post(
            "/v1/ioc/enrich/batch",
            json={"indicators": ["8.8.8.8"] * 4},
            headers=env.headers,
        )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "the request has 4 indicators, more than the limit of 3; split it into smaller batches"
    )


async def test_batch_at_limit_passes(env: ApiEnv) -> None:
    api = ApiSettings(batch_limit=3)
    async with app_client(create_app(env.settings, api)) as client:
        response = await client.post(
            "/v1/ioc/enrich/batch",
            json={"indicators": ["8.8.8.8"] * 3},
            headers=env.headers,
        )
    assert response.status_code == 200
    assert response.json()["count"] == 3


async def test_empty_batch_is_422(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/v1/ioc/enrich/batch", json={"indicators": []}, headers=env.headers
    )
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "invalid request: body.indicators: List should have at least 1 item after validation, not 0"
    )


async def test_second_lookup_is_cached(client: httpx.AsyncClient, env: ApiEnv) -> None:
    first = await client.post("/v1/ioc/enrich", json={"value": MALICIOUS_IP}, headers=env.headers)
    second = await client.post("/v1/ioc/enrich", json={"value": MALICIOUS_IP}, headers=env.headers)
    assert first.json()["cached"] == []
    assert second.json()["cached"] == ["internetdb"]


async def test_invalid_url_credentials_masked(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/v1/ioc/enrich/batch",
        json={"indicators": ["http://carol:pw3@", "hxxp://dave:pw4@evil[.]com:99999/"]},
        headers=env.headers,
    )
    assert response.status_code == 200
    assert "pw3" not in response.text
    assert "pw4" not in response.text
    assert "***@" in response.text
