"""Extraction over the real Wazuh 4.x alerts of the shared corpus.

Every alert must go through without an exception, the fields that carry an
address must yield it with the right role, and nothing that is not a public
address or name may be marked public.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from iocscope.config import ScopeSettings
from iocscope.indicators.model import IndicatorType
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import ScopePolicy
from iocscope.observables.extract import EMPTY_FILE_HASHES, extract_observables
from iocscope.observables.fields import first_value, values_at
from iocscope.observables.model import Extraction, Role
from tests.support.corpus import CORPUS, corpus_path

pytestmark = pytest.mark.corpus

POLICY = ScopePolicy.from_settings(ScopeSettings())
ALERTS_DIR = CORPUS / "wazuh-alerts"

# Name suffixes that must never be public, checked here independently of the scope module.
NON_PUBLIC_SUFFIXES = (".local", ".internal", ".lan", ".home.arpa", ".localdomain", ".localhost")


def _corpus_alerts() -> list[tuple[str, dict[str, Any]]]:
    """Return (test id, alert) for every corpus alert, [] when the corpus is absent.

    ar-messages.jsonl contains active-response messages, not alerts: the alert
    is ``message.parameters.alert``, and messages without one are left out.
    """
    if not ALERTS_DIR.is_dir():
        return []
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(ALERTS_DIR.glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            item = json.loads(line)
            if path.name == "ar-messages.jsonl":
                item = item.get("message", {}).get("parameters", {}).get("alert")
                if item is None:
                    continue
            found.append((f"{path.stem}-{number}", item))
    return found


CORPUS_ALERTS = _corpus_alerts()
IDS = [name for name, _ in CORPUS_ALERTS]
ALERTS = [alert for _, alert in CORPUS_ALERTS]


def _extract(alert: dict[str, Any]) -> Extraction:
    return extract_observables(alert, POLICY)


def test_corpus_is_present() -> None:
    assert corpus_path("wazuh-alerts").is_dir()


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_public_addresses_are_global(alert: dict[str, Any]) -> None:
    for item in _extract(alert).public():
        if item.indicator.type.is_ip:
            address = ipaddress.ip_address(item.indicator.value)
            assert address.is_global, item
            assert not address.is_multicast, item


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_internal_names_are_not_public(alert: dict[str, Any]) -> None:
    for item in _extract(alert).public():
        host = item.indicator.host or item.indicator.value
        if item.indicator.type in (IndicatorType.DOMAIN, IndicatorType.URL):
            assert "." in host, item
            assert not host.endswith(NON_PUBLIC_SUFFIXES), item


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_non_global_addresses_are_not_public(alert: dict[str, Any]) -> None:
    for item in _extract(alert).observables:
        if item.indicator.type.is_ip and not ipaddress.ip_address(item.indicator.value).is_global:
            assert not item.scope.is_public, item


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_observable_fields_exist_in_alert(alert: dict[str, Any]) -> None:
    for item in _extract(alert).observables:
        assert list(values_at(alert, item.field)), item.field


ADDRESS_FIELDS = [
    ("data.srcip", Role.SOURCE),
    ("data.src_ip", Role.SOURCE),
    ("data.dest_ip", Role.DESTINATION),
    ("data.win.eventdata.ipAddress", Role.SOURCE),
]


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_address_fields_yield_their_address(alert: dict[str, Any]) -> None:
    observed = {
        (item.role, item.field, item.indicator.value) for item in _extract(alert).observables
    }
    for field, role in ADDRESS_FIELDS:
        value = first_value(alert, field)
        if not isinstance(value, str) or value.strip() in ("", "-"):
            continue
        assert (role, field, parse_indicator(value).value) in observed


@pytest.mark.parametrize("alert", ALERTS, ids=IDS)
def test_no_imphash_or_empty_file_hash(alert: dict[str, Any]) -> None:
    hashes = first_value(alert, "data.win.eventdata.hashes")
    imphashes = set()
    if isinstance(hashes, str):
        imphashes = {
            part.partition("=")[2].lower()
            for part in hashes.split(",")
            if part.upper().startswith("IMPHASH=")
        }
    for item in _extract(alert).observables:
        assert item.indicator.value not in imphashes
        assert item.indicator.value not in EMPTY_FILE_HASHES


def _is_registry_event(alert: dict[str, Any]) -> bool:
    path = first_value(alert, "syscheck.path")
    return isinstance(path, str) and path.upper().startswith("HKEY_")


REGISTRY = [(name, alert) for name, alert in CORPUS_ALERTS if _is_registry_event(alert)]


@pytest.mark.parametrize(
    "alert", [alert for _, alert in REGISTRY], ids=[name for name, _ in REGISTRY]
)
def test_registry_events_yield_no_hashes(alert: dict[str, Any]) -> None:
    assert _extract(alert).observables == ()


def _find(rule_id: str, file_stem: str) -> dict[str, Any]:
    for name, alert in CORPUS_ALERTS:
        if name.startswith(file_stem) and alert.get("rule", {}).get("id") == rule_id:
            return alert
    pytest.skip(f"no alert of rule {rule_id} in {file_stem}.jsonl")


def test_sshd_attacker_is_public_source() -> None:
    extraction = _extract(_find("5760", "sshd"))
    assert [
        (item.role, item.indicator.value, item.scope.is_public) for item in extraction.observables
    ] == [(Role.SOURCE, "103.118.105.66", True)]


def test_sysmon_process_hashes() -> None:
    extraction = _extract(_find("92031", "sysmon"))
    types = sorted(item.indicator.type.value for item in extraction.observables)
    assert types == ["md5", "sha256"]
    assert extraction.skipped["imphash"] == 1


def test_fim_empty_file_is_skipped() -> None:
    extraction = _extract(_find("554", "syscheck"))
    assert extraction.observables == ()
    assert extraction.skipped["empty_file_hash"] == 3


def test_active_response_message_gives_same_result() -> None:
    path = corpus_path("wazuh-alerts", "ar-messages.jsonl")
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    message = first["message"]
    assert _extract(message) == _extract(message["parameters"]["alert"])
