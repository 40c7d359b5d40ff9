"""The enrichment event: its shape, status, severity, encoding and size limit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iocscope.engine.model import Assessment, Enrichment, Verdict
from iocscope.engine.report import enrichment_record
from iocscope.indicators.model import Indicator, IndicatorType, Scope, ScopeReason
from iocscope.sources.contract import SourceResult, Status
from iocscope.wazuh.analysisd import flatten_json_like_wazuh, static_fields_in
from iocscope.wazuh.events import (
    MIN_EVENT_BYTES,
    build_event,
    encode_event,
    fit_event,
    severity_for,
)

ALERT: dict[str, Any] = {
    "timestamp": "2024-05-01T10:00:00.000+0000",
    "rule": {"level": 10, "id": "5712", "description": "sshd: brute force", "groups": ["sshd"]},
    "agent": {"id": "001", "name": "host01", "ip": "198.51.100.32"},
    "id": "1714557600.1000",
    "location": "/var/log/auth.log",
    "data": {"srcip": "203.0.113.9"},
}


def record_for(
    verdict: str = "malicious",
    score: int = 87,
    *,
    value: str = "203.0.113.9",
    kind: IndicatorType = IndicatorType.IPV4,
    results: Sequence[SourceResult] = (),
    reasons: Sequence[str] = ("ipsum: listed (confidence 100)",),
    public: bool = True,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a real enrichment record, built by the engine's report function."""
    indicator = Indicator(kind, value, original=value, display=value)
    scope = Scope(ScopeReason.PUBLIC if public else ScopeReason.PRIVATE)
    enrichment = Enrichment(
        indicator=indicator,
        scope=scope,
        assessment=Assessment(score, Verdict(verdict), tuple(reasons)),
        results=tuple(results),
        context=context or {},
    )
    return enrichment_record(enrichment)


def flagged(source: str, reference: str | None = None) -> SourceResult:
    return SourceResult(source, Status.OK, found=True, flagged=True, reference=reference)


def clean(source: str, reference: str | None = None) -> SourceResult:
    return SourceResult(source, Status.OK, found=True, reference=reference)


def failed(source: str, status: Status = Status.ERROR) -> SourceResult:
    return SourceResult(source, status, error="timed out")


def event_for(record: dict[str, Any], alert: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_event(record, alert or ALERT, role="source", field="data.srcip")


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (100, "critical"),
        (90, "critical"),
        (89, "high"),
        (70, "high"),
        (69, "medium"),
        (40, "medium"),
        (39, "low"),
        (1, "low"),
        (0, "info"),
        (-3, "info"),
    ],
)
def test_severity_bands(score: int, severity: str) -> None:
    assert severity_for(score) == severity


def test_event_full_shape() -> None:
    record = record_for(
        results=[flagged("ipsum", "https://ipsum.example/203.0.113.9"), failed("abuseipdb")],
        context={"country_iso": "DE", "asn": 64500, "as_org": "Example AS", "city": None},
    )
    event = event_for(record)
    assert event == {
        "integration": "iocscope",
        "iocscope": {
            "verdict": "malicious",
            "severity": "high",
            "risk_score": 87,
            "status": "degraded",
            "indicator": {"type": "ipv4", "value": "203.0.113.9", "display": "203.0.113.9"},
            "role": "source",
            "field": "data.srcip",
            "source_rule": {"id": "5712", "level": 10, "description": "sshd: brute force"},
            "source_alert": {"id": "1714557600.1000", "timestamp": "2024-05-01T10:00:00.000+0000"},
            "sources_queried": 2,
            "sources_flagged": 1,
            "flagged_by": ["ipsum"],
            "sources_failed": ["abuseipdb"],
            "reasons": ["ipsum: listed (confidence 100)"],
            "context": {"country_iso": "DE", "asn": 64500, "as_org": "Example AS"},
            "reference": "https://ipsum.example/203.0.113.9",
        },
    }


def test_event_has_no_static_fields() -> None:
    event = event_for(record_for(results=[flagged("ipsum")]))
    assert set(event) == {"integration", "iocscope"}
    assert static_fields_in(event) == set()


def test_event_omits_empty_values() -> None:
    event = event_for(record_for("unknown", 0, reasons=(), results=[]), alert={"id": "1.2"})
    body = event["iocscope"]
    for key in ("flagged_by", "sources_failed", "reasons", "context", "reference", "source_rule"):
        assert key not in body
    assert body["source_alert"] == {"id": "1.2"}
    assert body["sources_queried"] == 0


@pytest.mark.parametrize(
    ("results", "public", "status"),
    [
        ([clean("otx"), flagged("ipsum")], True, "ok"),
        ([], True, "ok"),
        ([flagged("ipsum"), failed("abuseipdb")], True, "degraded"),
        ([clean("otx"), failed("abuseipdb", Status.RATE_LIMITED)], True, "degraded"),
        ([failed("abuseipdb"), failed("otx", Status.RATE_LIMITED)], True, "all_sources_failed"),
        ([failed("abuseipdb"), SourceResult("vt", Status.SKIPPED)], True, "all_sources_failed"),
        ([], False, "not_public"),
    ],
)
def test_event_status(results: list[SourceResult], public: bool, status: str) -> None:
    record = record_for("unknown", 0, results=results, public=public)
    assert event_for(record)["iocscope"]["status"] == status


def test_all_sources_failed_says_so() -> None:
    record = record_for("unknown", 0, results=[failed("abuseipdb"), failed("otx")], reasons=("x",))
    body = event_for(record)["iocscope"]
    assert body["reasons"][0] == "all 2 queried sources failed (abuseipdb, otx); no verdict"
    assert body["sources_failed"] == ["abuseipdb", "otx"]
    assert body["verdict"] == "unknown"


def test_reference_prefers_flagging_source() -> None:
    results = [clean("otx", "https://otx.example/1"), flagged("feodo", "https://feodo.example/2")]
    body = event_for(record_for(results=results))["iocscope"]
    assert body["reference"] == "https://feodo.example/2"


def test_invalid_role_rejected() -> None:
    message = (
        "invalid event role 'attacker': "
        "expected one of ['destination', 'file', 'query', 'related', 'source', 'url']"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build_event(record_for(), ALERT, role="attacker", field="data.srcip")


def test_invalid_verdict_rejected() -> None:
    record = record_for()
    record["verdict"] = "evil"
    message = (
        "invalid verdict 'evil': expected one of ['benign', 'malicious', 'suspicious', 'unknown']"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        event_for(record)


def test_numbers_stay_numbers_in_json() -> None:
    encoded = encode_event(event_for(record_for(results=[flagged("ipsum")])))
    assert b'"risk_score":87' in encoded
    assert b'"sources_queried":1' in encoded
    assert b'"level":10' in encoded


def test_encoding_is_one_line_despite_newlines() -> None:
    alert = dict(ALERT, rule={"id": "1", "level": 3, "description": "a\n1:iocscope:{}\r\x00b"})
    value = "http://203.0.113.9/a\n1:x:{}"
    record = record_for(value=value, kind=IndicatorType.URL)
    encoded = encode_event(event_for(record, alert))
    assert b"\n" not in encoded
    assert b"\r" not in encoded
    assert b"\x00" not in encoded
    assert orjson.loads(encoded)["iocscope"]["indicator"]["value"] == value


def test_fit_leaves_small_event_alone() -> None:
    event = event_for(record_for())
    assert fit_event(event, 65_000) == encode_event(event)


def test_fit_trims_reasons_before_indicator() -> None:
    reasons = [f"source{index}: listed as a botnet controller " * 4 for index in range(200)]
    event = event_for(record_for(reasons=reasons, results=[flagged("ipsum")]))
    fitted = fit_event(event, 4_000)
    body = orjson.loads(fitted)["iocscope"]
    assert len(fitted) <= 4_000
    assert 0 < len(body["reasons"]) < 200
    assert body["reasons"] == reasons[: len(body["reasons"])]
    assert body["indicator"]["value"] == "203.0.113.9"
    assert body["truncated"] == ["reasons"]


def test_fit_cuts_huge_url() -> None:
    url = "http://203.0.113.9/" + "a" * 300_000
    record = record_for(value=url, kind=IndicatorType.URL, results=[flagged("urlhaus")])
    fitted = fit_event(event_for(record), 64_000)
    body = orjson.loads(fitted)["iocscope"]
    assert len(fitted) <= 64_000
    assert url.startswith(body["indicator"]["value"])
    assert url.startswith(body["indicator"]["display"])
    assert {"indicator.value", "indicator.display"} <= set(body["truncated"])
    assert body["verdict"] == "malicious"
    assert body["flagged_by"] == ["urlhaus"]


def test_fit_counts_escaped_bytes() -> None:
    # Each control character costs six bytes once escaped as \u00XX.
    value = "\x01" * 50_000
    fitted = fit_event(event_for(record_for(value=value)), 10_000)
    assert len(fitted) <= 10_000
    assert set(orjson.loads(fitted)["iocscope"]["indicator"]["value"]) <= {"\x01"}


def test_fit_falls_back_to_minimal_event() -> None:
    event = {"integration": "iocscope", "iocscope": {"verdict": "malicious" * 100}}
    fitted = fit_event(event, MIN_EVENT_BYTES)
    assert len(fitted) <= MIN_EVENT_BYTES
    assert orjson.loads(fitted)["iocscope"]["truncated"] == ["all"]


def test_fit_rejects_tiny_limit() -> None:
    message = "event size limit 100 is below the minimum of 512"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fit_event(event_for(record_for()), 100)


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(min_size=1, max_size=3_000),
    reasons=st.lists(st.text(max_size=400), max_size=40),
    description=st.text(max_size=3_000),
    limit=st.integers(min_value=MIN_EVENT_BYTES, max_value=6_000),
)
def test_fit_always_within_limit(
    value: str, reasons: list[str], description: str, limit: int
) -> None:
    alert = dict(ALERT, rule={"id": "1", "level": 3, "description": description})
    record = record_for(value=value, reasons=reasons, kind=IndicatorType.URL)
    event = build_event(record, alert, role="url", field="data.url")
    fitted = fit_event(event, limit)
    decoded = orjson.loads(fitted)
    assert len(fitted) <= limit
    assert b"\n" not in fitted
    assert set(decoded) == {"integration", "iocscope"}
    assert decoded["iocscope"]["verdict"] == "malicious"
    assert flatten_json_like_wazuh(decoded)["integration"] == "iocscope"
