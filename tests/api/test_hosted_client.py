"""A client written for hosted enrichment APIs works unchanged against iocscope.

``HostedEnrichmentClient`` is what such an integration typically contains:
it posts ``{type, value}`` with ``X-API-Key`` and reads ``risk_score``,
``verdict``, ``sources_flagged`` and ``sources_queried``. It has no
iocscope-specific code, and the test points it at a real uvicorn server.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.api.conftest import MALICIOUS_IP, SUSPICIOUS_IP, ApiEnv


@dataclass(frozen=True)
class Reputation:
    risk_score: int
    verdict: str
    sources_flagged: int
    sources_queried: int


class HostedEnrichmentClient:
    def __init__(self, base_url: str, api_key: str) -> None:
        self._http = httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=10.0)

    def check(self, kind: str, value: str) -> Reputation:
        response = self._http.post("/v1/ioc/enrich", json={"type": kind, "value": value})
        response.raise_for_status()
        body = response.json()
        return Reputation(
            risk_score=int(body["risk_score"]),
            verdict=str(body["verdict"]),
            sources_flagged=int(body["sources_flagged"]),
            sources_queried=int(body["sources_queried"]),
        )

    def close(self) -> None:
        self._http.close()


def test_hosted_client_reads_verdicts(live_url: str, live_env: ApiEnv) -> None:
    client = HostedEnrichmentClient(live_url, live_env.key)
    try:
        malicious = client.check("ip", MALICIOUS_IP)
        suspicious = client.check("ip", SUSPICIOUS_IP)
    finally:
        client.close()
    assert malicious.verdict == "malicious"
    assert malicious.risk_score >= 70
    assert malicious.sources_flagged == 2
    assert malicious.sources_queried >= 2
    assert suspicious.verdict == "suspicious"


def test_hosted_client_sees_401_for_bad_key(live_url: str) -> None:
    client = HostedEnrichmentClient(live_url, "iocs_000000000000_wrong")
    try:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            client.check("ip", MALICIOUS_IP)
    finally:
        client.close()
    assert caught.value.response.status_code == 401
