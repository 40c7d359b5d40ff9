"""``/v1/sources``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from iocscope.api.app import create_app
from iocscope.api.schemas import ReadyResponse, SourcesResponse
from iocscope.config import settings_from_mapping
from tests.api.conftest import MALICIOUS_IP, ApiEnv, app_client


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the exposition text; raises ValueError when it is not valid."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_readyz_counts_feeds(client: httpx.AsyncClient, env: ApiEnv) -> None:
    body = (await client.get("/readyz", headers=env.headers)).json()
    ReadyResponse.model_validate(body)
    assert body["ready"] is True
    assert body["feeds_loaded"] == 1
    assert body["feeds_total"] > 1
    assert body["sources_enabled"] >= 2


async def test_sources_states(client: httpx.AsyncClient, env: ApiEnv) -> None:
    body = (await client.get("/v1/sources", headers=env.headers)).json()
    SourcesResponse.model_validate(body)
    by_name = {source["name"]: source for source in body["sources"]}
    assert by_name["ipsum"]["enabled"] is True
    assert by_name["ipsum"]["circuit"] == "closed"
    assert by_name["abuseipdb"]["enabled"] is False
    assert by_name["abuseipdb"]["circuit"] == "open"
    assert by_name["abuseipdb"]["state"] == "disabled in the configuration"
    assert by_name["abuseipdb"]["budget_left"] == by_name["abuseipdb"]["daily_budget"]


async def test_sources_budget_left_drops_after_call(env: ApiEnv) -> None:
    raw = env.settings.model_dump(mode="json")
    raw["sources"]["internetdb"]["daily_budget"] = 10
    settings = settings_from_mapping(raw)
    async with app_client(create_app(settings)) as client:
        await client.post("/v1/ioc/enrich", json={"value": MALICIOUS_IP}, headers=env.headers)
        body = (await client.get("/v1/sources", headers=env.headers)).json()
    internetdb = next(s for s in body["sources"] if s["name"] == "internetdb")
    assert internetdb["daily_budget"] == 10
    assert internetdb["calls_today"] == 1
    assert internetdb["budget_left"] == 9


async def test_metrics_format_and_counts(client: httpx.AsyncClient, env: ApiEnv) -> None:
    for _ in range(2):
        await client.post("/v1/ioc/enrich", json={"value": MALICIOUS_IP}, headers=env.headers)
    await client.post("/v1/ioc/enrich", json={"value": "bad value"}, headers=env.headers)
    response = await client.get("/metrics", headers=env.headers)
    values = samples(response.text)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    route = (("method", "POST"), ("route", "/v1/ioc/enrich"), ("status", "200"))
    assert values[("iocscope_http_requests_total", route)] == 2
    rejected = (("method", "POST"), ("route", "/v1/ioc/enrich"), ("status", "422"))
    assert values[("iocscope_http_requests_total", rejected)] == 1
    assert values[("iocscope_enrichments_total", (("verdict", "malicious"),))] == 2
    assert values[("iocscope_invalid_indicators_total", ())] == 1
    assert values[("iocscope_source_calls_total", (("source", "internetdb"),))] == 1
    assert values[("iocscope_cache_hits_total", (("source", "internetdb"),))] == 1
    assert values[("iocscope_feeds_loaded", ())] == 1


async def test_metrics_count_source_errors(client: httpx.AsyncClient, env: ApiEnv) -> None:
    # The replay server has no reply queued for this address, so InternetDB fails.
    await client.post("/v1/ioc/enrich", json={"value": "203.0.114.9"}, headers=env.headers)
    values = samples((await client.get("/metrics", headers=env.headers)).text)
    assert values[("iocscope_source_errors_total", (("source", "internetdb"),))] == 1


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient, env: ApiEnv) -> None:
    for path in ("/a", "/b", "/c"):
        await client.get(path)
    values = samples((await client.get("/metrics", headers=env.headers)).text)
    unmatched = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert values[("iocscope_http_requests_total", unmatched)] == 3


async def test_tests_send_nothing_off_host(client: httpx.AsyncClient, env: ApiEnv) -> None:
    body = (await client.get("/v1/sources", headers=env.headers)).json()
    networked = [s["name"] for s in body["sources"] if s["enabled"] and s["kind"] != "feed"]
    assert networked == ["internetdb"]
