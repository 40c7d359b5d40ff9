"""``/api/v1/enrichment/lookup``: the ``{data, meta}`` envelope of hosted lookup APIs."""

from __future__ import annotations

import httpx

from iocscope.api.schemas import LookupResponse
from tests.api.conftest import MALICIOUS_IP, UNLISTED_IP, ApiEnv


async def test_lookup_envelope(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/api/v1/enrichment/lookup",
        json={"indicators": [MALICIOUS_IP, {"type": "ip", "value": UNLISTED_IP}]},
        headers={"Authorization": f"Bearer {env.key}"},
    )
    body = response.json()
    LookupResponse.model_validate(body)
    results = body["data"]["results"]
    assert response.status_code == 200
    assert [result["indicator"] for result in results] == [MALICIOUS_IP, UNLISTED_IP]
    assert [result["verdict"] for result in results] == ["malicious", "unknown"]
    assert results[0]["type"] == "ipv4"
    assert results[0]["score"] >= 70
    assert body["meta"]["count"] == 2
    assert body["meta"]["api_version"] == "v1"
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]


async def test_lookup_providers(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/api/v1/enrichment/lookup",
        json={"indicators": [MALICIOUS_IP]},
        headers={"Authorization": f"Bearer {env.key}"},
    )
    providers = {p["name"]: p for p in response.json()["data"]["results"][0]["providers"]}
    assert providers["ipsum"]["flagged"] is True
    assert providers["ipsum"]["summary"] == "listed by 9 of the IPsum blocklists"
    assert providers["internetdb"]["flagged"] is True


async def test_lookup_invalid_item_has_error(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post(
        "/api/v1/enrichment/lookup",
        json={"indicators": ["999.1.1.1"]},
        headers={"Authorization": f"Bearer {env.key}"},
    )
    result = response.json()["data"]["results"][0]
    assert response.status_code == 200
    assert result["verdict"] is None
    assert result["score"] is None
    assert result["error"]["code"] == "invalid_indicator"
    assert result["error"]["message"].startswith("invalid indicator '999.1.1.1'")
