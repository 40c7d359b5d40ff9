"""The shared provider cases: real source modules against a replay server on 127.0.0.1.

Each case of the ``provider_api`` family is a recorded provider response, a
configuration or an alert, with the behaviour an operator expects. The
tests drive the real source modules (built by their ``create`` factories
from settings with a ``base_url`` override and a key from the environment)
and, where the case is about combining answers, the real engine of
``open_runtime`` with its cache, limiter and feeds. The cases file is an
input: without it every test here is skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.alerts import AlertEnricher
from iocscope.engine.model import Enrichment, Verdict
from iocscope.errors import BadResponseError
from iocscope.indicators.model import Indicator, IndicatorType
from iocscope.runtime import open_runtime
from iocscope.sources import greynoise, otx, virustotal
from iocscope.sources.contract import Source, SourceKind, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.feeds.store import FeedStore, import_feed
from iocscope.sources.http import build_http_client
from iocscope.sources.registry import catalogue
from iocscope.wazuh.analysisd import parse_queue_message
from iocscope.wazuh.daemon import Daemon
from iocscope.wazuh.journal import DeliveryJournal
from iocscope.wazuh.queue import QueueWriter
from iocscope.wazuh.spool import SpoolReader, SpoolWriter
from tests.support.corpus import cases_of
from tests.support.replay import ReplayServer, Reply, replay_server
from tests.wazuh.analysisd_socket import CollectingAnalysisd

pytestmark = pytest.mark.corpus

CASES = {case["id"]: case for case in cases_of("provider_api")}
HANDLED = ("B41", "B42", "B44", "B45", "B48", "B49", "B52", "B53", "B54")
KEYS = {
    "virustotal": "vt-case-key-5e1f0a",
    "otx": "otx-case-key-77b2c9",
    "abuseipdb": "abuseipdb-case-key-0d4e61",
}
# Documentation ranges stand in for public attackers; this lab makes them public.
LAB_NETWORKS = ["198.51.100.0/24", "203.0.113.0/24"]
FASTLY_ADDRESS = "151.101.130.137"
RETRY_LATER = {"Retry-After": "3600"}  # longer than any retry cap: no retry, no sleep


def case(case_id: str) -> dict[str, Any]:
    """Return one shared case, or skip when the cases file or the case is absent."""
    if case_id not in CASES:
        pytest.skip(f"shared case {case_id} is absent; the cases file lives beside the repository")
    return CASES[case_id]


def ip(value: str) -> Indicator:
    return Indicator(type=IndicatorType.IPV4, value=value, original=value, display=value)


def sha256(value: str) -> Indicator:
    return Indicator(type=IndicatorType.SHA256, value=value, original=value, display=value)


def vt_object(kind: str, object_id: str, stats: dict[str, int]) -> dict[str, Any]:
    # VirusTotal always sends all four verdict counters; cases may abbreviate them.
    counters = {"malicious": 0, "suspicious": 0, "harmless": 0, "undetected": 0, **stats}
    return {
        "data": {"type": kind, "id": object_id, "attributes": {"last_analysis_stats": counters}}
    }


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with replay_server() as running:
        yield running


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, key in KEYS.items():
        monkeypatch.setenv(f"IOCSCOPE_{name.upper()}_API_KEY", key)


def lab_settings(
    data_dir: Path, server: ReplayServer, enabled: tuple[str, ...], **extra: Any
) -> Settings:
    """Settings with only the ``enabled`` API sources on, each pointed at the replay server."""
    sources: dict[str, dict[str, Any]] = {
        entry.meta.name: {"enabled": False}
        for entry in catalogue()
        if entry.meta.kind is not SourceKind.FEED
    }
    for name in enabled:
        sources[name] = {"base_url": f"{server.base_url}/{name}", **extra.get(name, {})}
    return settings_from_mapping(
        {
            "data_dir": str(data_dir),
            "scope": {"public_overrides": LAB_NETWORKS},
            "sources": sources,
        }
    )


@asynccontextmanager
async def source_for(module: Any, settings: Settings) -> AsyncIterator[Source]:
    """Build one source with its module's ``create``, as the registry does."""
    async with build_http_client(settings) as http:
        deps = SourceDeps(settings=settings, http=http, feeds=FeedStore.empty(settings.data_dir))
        yield module.create(deps)


def feed_file(tmp_path: Path, feed: str, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    import_feed(tmp_path / "data", feed, path)


def by_source(enrichment: Enrichment) -> dict[str, SourceResult]:
    return {result.source: result for result in enrichment.results}


def test_every_case_is_handled() -> None:
    if not CASES:
        pytest.skip("the shared cases file is absent; it lives beside the repository")
    assert sorted(CASES) == sorted(HANDLED)


# B41: a spent VirusTotal quota is "rate limited" without a verdict, and the
# other sources' results are still returned.


async def test_b41_quota_is_rate_limited(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    v3 = next(answer for answer in case("B41")["input"] if answer["api"] == "v3")
    address = "203.0.113.41"
    path = f"/virustotal/api/v3/ip_addresses/{address}"
    server.queue(path, Reply(v3["status"], json.dumps(v3["body"]), headers=RETRY_LATER))
    feed_file(tmp_path, "ipsum", "ipsum.txt", f"{address}\t3\n")
    settings = lab_settings(tmp_path / "data", server, ("virustotal",))

    async with open_runtime(settings) as runtime:
        first = await runtime.engine.enrich_value(address)
        second = await runtime.engine.enrich_value(address)

    vt = by_source(first)["virustotal"]
    assert vt.status is Status.RATE_LIMITED
    assert (vt.found, vt.flagged, vt.benign, vt.confidence) == (False, False, False, 0)
    assert vt.retry_after == 3600
    ipsum = by_source(first)["ipsum"]
    assert (ipsum.status, ipsum.flagged) == (Status.OK, True)
    assert first.assessment.verdict is Verdict.SUSPICIOUS
    assert any(reason.startswith("virustotal: rate limited") for reason in first.assessment.reasons)
    # The provider asked for a pause: the second lookup does not call it again.
    assert by_source(second)["virustotal"].status is Status.RATE_LIMITED
    assert len(server.requests_to(path)) == 1


# B42: VirusTotal v3 counts are read from last_analysis_stats; a missing
# counter is a parse error, never "0 positives".


async def test_b42_reads_v3_stats(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    answer = case("B42")["input"]
    file_id = answer["body"]["data"]["id"]
    server.queue(
        f"/virustotal/api/v3/files/{file_id}", Reply(answer["status"], json.dumps(answer["body"]))
    )
    settings = lab_settings(tmp_path, server, ("virustotal",))

    async with source_for(virustotal, settings) as source:
        result = await source.lookup(sha256(file_id))

    assert result.status is Status.OK
    assert result.found is True
    assert result.context["malicious"] == 3
    assert result.context["engines"] == 63
    assert result.summary.startswith("3 of 63 engines call it malicious")
    assert result.flagged is True  # 3 engines reach the default flag threshold
    assert result.confidence == virustotal.confidence(3, 63)


@pytest.mark.parametrize(
    "attributes",
    [{}, {"last_analysis_stats": {"malicious": 3}}, {"last_analysis_stats": None}],
    ids=["no-stats", "missing-counters", "null-stats"],
)
async def test_b42_missing_keys_are_errors(
    tmp_path: Path, server: ReplayServer, keys: None, attributes: dict[str, Any]
) -> None:
    answer = case("B42")["input"]
    file_id = answer["body"]["data"]["id"]
    body = {"data": {"type": "file", "id": file_id, "attributes": attributes}}
    server.queue(f"/virustotal/api/v3/files/{file_id}", Reply(200, json.dumps(body)))
    settings = lab_settings(tmp_path, server, ("virustotal",))

    async with source_for(virustotal, settings) as source:
        with pytest.raises(BadResponseError) as caught:
            await source.lookup(sha256(file_id))

    assert str(caught.value).startswith("virustotal: returned a response in an unexpected format")
    assert "0 of" not in str(caught.value)


# B44: OTX with no pulses is not flagged, a 404 is "not found", and an
# unknown shape is an error record without a traceback.


async def test_b44_no_pulses_not_flagged(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    answer = case("B44")["input"][0]
    address = answer["body"]["indicator"]
    server.queue(
        f"/otx/api/v1/indicators/IPv4/{address}/general", Reply(200, json.dumps(answer["body"]))
    )
    settings = lab_settings(tmp_path, server, ("otx",))

    async with source_for(otx, settings) as source:
        result = await source.lookup(ip(address))

    assert result.status is Status.OK
    assert result.flagged is False
    assert result.context["pulse_count"] == 0


async def test_b44_not_found(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    answer = case("B44")["input"][1]
    address = "203.0.113.44"
    server.queue(
        f"/otx/api/v1/indicators/IPv4/{address}/general",
        Reply(answer["status"], json.dumps(answer["body"])),
    )
    settings = lab_settings(tmp_path, server, ("otx",))

    async with source_for(otx, settings) as source:
        result = await source.lookup(ip(address))

    assert (result.status, result.found, result.flagged) == (Status.OK, False, False)
    assert result.summary == "unknown to OTX"


async def test_b44_unknown_shape_is_error(
    tmp_path: Path, server: ReplayServer, keys: None, caplog: pytest.LogCaptureFixture
) -> None:
    case("B44")
    address = "203.0.113.45"
    body = {"indicator": address, "pulses": "moved to another endpoint"}
    server.queue(f"/otx/api/v1/indicators/IPv4/{address}/general", Reply(200, json.dumps(body)))
    settings = lab_settings(tmp_path / "data", server, ("otx",))

    with caplog.at_level(logging.DEBUG):
        async with open_runtime(settings) as runtime:
            enrichment = await runtime.engine.enrich_value(address)

    record = by_source(enrichment)["otx"]
    assert record.status is Status.ERROR
    assert record.error is not None
    assert record.error.startswith("otx: ")
    assert enrichment.assessment.verdict is Verdict.UNKNOWN
    assert [entry for entry in caplog.records if entry.exc_info] == []


# B45: a URLhaus 401 is an authentication error. tests/sources/test_urlhaus.py
# (test_public_case) replays the case itself; here the engine keeps the other
# sources' results and never calls the indicator "not listed".


async def test_b45_auth_error_is_not_unlisted(
    tmp_path: Path, server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = case("B45")["input"]
    monkeypatch.setenv("IOCSCOPE_URLHAUS_API_KEY", "urlhaus-case-key-91aa0c")
    server.queue(
        "/urlhaus/v1/host/", Reply(answer["status"], answer["body"], content_type="text/plain")
    )
    settings = lab_settings(tmp_path / "data", server, ("urlhaus",))

    async with open_runtime(settings) as runtime:
        enrichment = await runtime.engine.enrich_value("files.b45-case-host.com")

    record = by_source(enrichment)["urlhaus"]
    assert record.status is Status.ERROR
    assert record.found is False
    assert record.error == (
        "urlhaus: the API key was rejected (status 401); check IOCSCOPE_URLHAUS_API_KEY"
    )
    assert "not listed" not in " ".join(enrichment.assessment.reasons)


# B48: GreyNoise "IP not observed" is not found (neither error nor benign);
# a 400 for a valid address is an error.


async def test_b48_not_observed(tmp_path: Path, server: ReplayServer) -> None:
    answer = case("B48")["input"][0]
    address = answer["body"]["ip"]
    server.queue(
        f"/greynoise/v3/community/{address}", Reply(answer["status"], json.dumps(answer["body"]))
    )
    settings = lab_settings(tmp_path, server, ("greynoise",))

    async with source_for(greynoise, settings) as source:
        result = await source.lookup(ip(address))

    assert (result.status, result.found, result.flagged, result.benign) == (
        Status.OK,
        False,
        False,
        False,
    )
    assert result.summary


async def test_b48_bad_request_is_error(tmp_path: Path, server: ReplayServer) -> None:
    answer = case("B48")["input"][1]
    address = "198.51.100.48"
    server.queue(
        f"/greynoise/v3/community/{address}", Reply(answer["status"], json.dumps(answer["body"]))
    )
    settings = lab_settings(tmp_path, server, ("greynoise",))

    async with source_for(greynoise, settings) as source:
        with pytest.raises(BadResponseError) as caught:
            await source.lookup(ip(address))

    assert "Invalid IP submitted" in str(caught.value)


async def test_b48_private_address_never_sent(tmp_path: Path, server: ReplayServer) -> None:
    case("B48")
    settings = lab_settings(tmp_path / "data", server, ("greynoise",))

    async with open_runtime(settings) as runtime:
        enrichment = await runtime.engine.enrich_value("192.168.10.7")

    assert enrichment.results == ()
    assert enrichment.assessment.reasons[0].startswith("not public (")
    assert server.received == []


# B49: one result per hash is cached for every client of the service, and
# the per-source rate and daily budget stop calls instead of hammering.


HASHES = ("a" * 64, "b" * 64, "c" * 64)


def queue_hashes(server: ReplayServer) -> None:
    for value in HASHES:
        body = vt_object("file", value, {"malicious": 0, "undetected": 60})
        server.queue(f"/virustotal/api/v3/files/{value}", Reply(200, json.dumps(body)))


async def test_b49_cache_shared_between_runtimes(
    tmp_path: Path, server: ReplayServer, keys: None
) -> None:
    case("B49")
    queue_hashes(server)
    settings = lab_settings(tmp_path / "data", server, ("virustotal",))

    # Two runtimes on one data directory, like two Wazuh managers sending to one service.
    async with open_runtime(settings) as first:
        answered = await first.engine.enrich_value(HASHES[0])
    async with open_runtime(settings) as second:
        reused = await second.engine.enrich_value(HASHES[0])

    assert answered.cached == ()
    assert reused.cached == ("virustotal",)
    assert by_source(reused)["virustotal"] == by_source(answered)["virustotal"]
    assert len(server.requests_to(f"/virustotal/api/v3/files/{HASHES[0]}")) == 1


async def test_b49_budget_stops_calls(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    case("B49")
    queue_hashes(server)
    settings = lab_settings(
        tmp_path / "data", server, ("virustotal",), virustotal={"daily_budget": 2}
    )

    async with open_runtime(settings) as runtime:
        results = [await runtime.engine.enrich_value(value) for value in HASHES]
        again = await runtime.engine.enrich_value(HASHES[2])

    statuses = [by_source(result)["virustotal"].status for result in results]
    assert statuses == [Status.OK, Status.OK, Status.RATE_LIMITED]
    spent = by_source(again)["virustotal"]
    assert spent.status is Status.RATE_LIMITED
    assert spent.error is not None
    assert "budget" in spent.error
    assert len(server.requests_to(f"/virustotal/api/v3/files/{HASHES[2]}")) == 0


def test_b49_public_rate_is_the_default() -> None:
    config = case("B49")["input"]
    assert config["key_tier"] == "public"
    assert (virustotal.META.rate_per_minute, virustotal.META.daily_budget) == (4, 500)


# B52: identical lookups in flight at the same time share one request.


async def test_b52_single_flight(tmp_path: Path, server: ReplayServer, keys: None) -> None:
    submission = case("B52")["input"]
    address = submission["ioc"]
    path = f"/virustotal/api/v3/ip_addresses/{address}"
    body = vt_object("ip_address", address, {"malicious": 4, "undetected": 56})
    # The response is held back, so all five lookups are in flight together.
    server.queue(path, Reply(200, json.dumps(body), delay=0.3))
    settings = lab_settings(tmp_path / "data", server, ("virustotal",))

    async with open_runtime(settings) as runtime:
        found = await asyncio.gather(
            *(runtime.engine.enrich_value(address) for _ in range(submission["submissions"]))
        )

    assert len(server.requests_to(path)) == 1
    records = [by_source(enrichment)["virustotal"] for enrichment in found]
    assert {record.status for record in records} == {Status.OK}
    assert len({record.summary for record in records}) == 1
    assert runtime.engine.stats.source_calls["virustotal"] == 1


# B53: a Fastly edge address with one VirusTotal engine and one local feed
# hit is shared infrastructure, never malicious.


async def test_b53_one_engine_is_not_a_flag(
    tmp_path: Path, server: ReplayServer, keys: None
) -> None:
    stats = case("B53")["input"]["virustotal"]["last_analysis_stats"]
    address = case("B53")["input"]["ioc"]
    body = vt_object("ip_address", address, stats)
    server.queue(f"/virustotal/api/v3/ip_addresses/{address}", Reply(200, json.dumps(body)))
    settings = lab_settings(tmp_path, server, ("virustotal",))

    async with source_for(virustotal, settings) as source:
        result = await source.lookup(ip(address))

    assert (result.found, result.flagged) == (True, False)


@pytest.mark.parametrize(
    ("feed", "line", "verdict"),
    [
        ("blocklist_de", f"{FASTLY_ADDRESS}\n", Verdict.BENIGN),
        # Even a strong feed alone is held at suspicious on a CDN address.
        ("ipsum", f"{FASTLY_ADDRESS}\t6\n", Verdict.SUSPICIOUS),
    ],
    ids=["weak-feed", "strong-feed"],
)
async def test_b53_cdn_address_not_malicious(
    tmp_path: Path, server: ReplayServer, keys: None, *, feed: str, line: str, verdict: Verdict
) -> None:
    b53 = case("B53")["input"]
    address = b53["ioc"]
    body = vt_object("ip_address", address, b53["virustotal"]["last_analysis_stats"])
    server.queue(f"/virustotal/api/v3/ip_addresses/{address}", Reply(200, json.dumps(body)))
    ranges = {"addresses": ["151.101.0.0/16"], "ipv6_addresses": ["2a04:4e40::/32"]}
    feed_file(tmp_path, "fastly_ips", "public-ip-list.json", json.dumps(ranges))
    feed_file(tmp_path, feed, "feed.txt", line)
    settings = lab_settings(tmp_path / "data", server, ("virustotal",))

    async with open_runtime(settings) as runtime:
        enrichment = await runtime.engine.enrich_value(address)

    records = by_source(enrichment)
    assert records["fastly_ips"].benign is True
    assert records[feed].flagged is True
    assert enrichment.assessment.verdict is verdict
    # A CDN range is a weak hint: the API sources are still asked, so a second
    # strong source could corroborate; VirusTotal's single engine does not flag.
    assert records["virustotal"].status is Status.OK
    assert records["virustotal"].flagged is False


# B54: an sshd alert whose source address is only suspicious or is a known
# benign service raises an event but never a firewall-drop.


def abuseipdb_body(address: str, score: int) -> str:
    data = {
        "ipAddress": address,
        "isPublic": True,
        "abuseConfidenceScore": score,
        "totalReports": 0,
    }
    return json.dumps({"data": {**data, "numDistinctUsers": 0, "isWhitelisted": False}})


def greynoise_body(address: str, riot: bool) -> tuple[int, str]:
    if not riot:
        return 404, json.dumps(
            {"ip": address, "noise": False, "riot": False, "message": "IP not observed"}
        )
    body = {
        "ip": address,
        "noise": False,
        "riot": True,
        "classification": "benign",
        "name": "Example Business Service",
        "link": f"https://viz.greynoise.io/riot/{address}",
        "last_seen": "2024-05-01",
        "message": "Success",
    }
    return 200, json.dumps(body)


@asynccontextmanager
async def daemon_for(settings: Settings, root: Path) -> AsyncIterator[Daemon]:
    wazuh = settings.wazuh
    async with open_runtime(settings) as runtime:
        journal = DeliveryJournal(settings.data_dir / "delivery.sqlite3")
        writer = QueueWriter(wazuh.queue_socket_path(), spill_dir=root / "buffer")
        try:
            yield Daemon(
                AlertEnricher(runtime.engine, settings.alerts.max_observables),
                writer,
                journal,
                wazuh,
                spool=SpoolReader(wazuh.spool_path()),
                follower=None,
            )
        finally:
            writer.close()
            journal.close()


def b54_settings(tmp_path: Path, server: ReplayServer) -> Settings:
    base = lab_settings(tmp_path / "data", server, ("abuseipdb", "greynoise"))
    wazuh = {
        "wazuh_dir": str(tmp_path / "ossec"),
        "queue_socket": str(tmp_path / "queue"),
        "spool_dir": str(tmp_path / "spool"),
        "srcip_for_active_response": True,
    }
    raw = base.model_dump(mode="json")
    raw["wazuh"] = {**raw["wazuh"], **wazuh}
    return settings_from_mapping(raw)


@pytest.mark.parametrize(
    ("riot", "feeds", "verdict", "blocked"),
    [
        (True, {}, Verdict.BENIGN, False),
        (True, {"ipsum": "\t6\n"}, Verdict.SUSPICIOUS, False),
        (False, {"blocklist_de": "\n"}, Verdict.SUSPICIOUS, False),
        (False, {"ipsum": "\t9\n", "et_compromised": "\n"}, Verdict.MALICIOUS, True),
    ],
    ids=["benign-service", "benign-service-and-strong-feed", "weak-feed", "malicious-control"],
)
async def test_b54_block_only_malicious(
    tmp_path: Path,
    server: ReplayServer,
    keys: None,
    *,
    riot: bool,
    feeds: dict[str, str],
    verdict: Verdict,
    blocked: bool,
) -> None:
    alert = case("B54")["input"]["alert"]
    address = alert["data"]["srcip"]
    enrichment = case("B54")["input"]["enrichment"]
    score = enrichment["abuseipdb"]["abuseConfidenceScore"]
    server.queue("/abuseipdb/api/v2/check", Reply(200, abuseipdb_body(address, score)))
    status, body = greynoise_body(address, riot and enrichment["greynoise"]["riot"])
    server.queue(f"/greynoise/v3/community/{address}", Reply(status, body))
    for feed, suffix in feeds.items():
        feed_file(tmp_path, feed, f"{feed}.txt", address + suffix)
    settings = b54_settings(tmp_path, server)
    analysisd = CollectingAnalysisd(tmp_path / "queue")
    try:
        SpoolWriter(tmp_path / "spool").write(orjson.dumps(alert), "alert")
        async with daemon_for(settings, tmp_path) as daemon:
            assert await daemon.run_once() == 1
        messages = [parse_queue_message(data) for data in analysisd.receive_all()]
    finally:
        analysisd.close()

    (message,) = messages
    event = orjson.loads(message.payload)
    assert event["iocscope"]["verdict"] == verdict.value
    assert ("srcip" in event) is blocked
