"""Public bug cases whose input is a Wazuh alert, checked against extraction.

Every alert case gets the general checks: no exception, no non-global
address marked public and no value with control characters. The cases with
a known id also get the checks that their expected behaviour names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest

from iocscope.config import ScopeSettings
from iocscope.indicators.model import IndicatorType
from iocscope.indicators.scope import ScopePolicy
from iocscope.observables.extract import extract_observables
from iocscope.observables.model import Extraction, Role
from tests.support.corpus import cases_of

POLICY = ScopePolicy.from_settings(ScopeSettings())
SECURITY_ALERT_CASES = ("B58", "B60")

CASES = [case for case in cases_of("observable_extraction") if case["input_kind"] == "alert"] + [
    case for case in cases_of("security") if case["id"] in SECURITY_ALERT_CASES
]


def _alerts(case: dict[str, Any]) -> list[Any]:
    payload = case["input"]
    if isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
        return list(payload["alerts"])
    return [payload]


def _extractions(case: dict[str, Any]) -> list[Extraction]:
    return [extract_observables(alert, POLICY) for alert in _alerts(case)]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_case_general_checks(case: dict[str, Any]) -> None:
    for extraction in _extractions(case):
        for item in extraction.observables:
            assert item.indicator.value.isprintable(), item
            if item.indicator.type.is_ip and item.scope.is_public:
                assert ipaddress.ip_address(item.indicator.value).is_global, item


def _check_b26(extractions: list[Extraction]) -> None:
    # Sysmon hashes: SHA1 and MD5 lower-cased, IMPHASH never an MD5, no SHA256 is fine.
    (extraction,) = extractions
    assert {(item.indicator.type, item.indicator.value) for item in extraction.observables} == {
        (IndicatorType.SHA1, "3395856ce81f2b7382dee72602f798b642f14140"),
        (IndicatorType.MD5, "44d88612fea8a8f36de82e1278abb02f"),
    }
    assert extraction.skipped["imphash"] == 1


def _check_b38(extractions: list[Extraction]) -> None:
    # An active-response message: the IPv6 source of the inner alert comes out.
    (extraction,) = extractions
    (item,) = extraction.observables
    assert (item.role, item.indicator.type, item.indicator.value) == (
        Role.SOURCE,
        IndicatorType.IPV6,
        "2001:db8:3bce:70ab::539a",
    )
    assert not item.scope.is_public


def _check_b58(extractions: list[Extraction]) -> None:
    # Internal names and non-global addresses never leave the host.
    values = {item.indicator.value for extraction in extractions for item in extraction.observables}
    assert values == {"fs01.corp.internal", "192.0.2.40", "172.18.0.1"}
    assert all(extraction.public() == () for extraction in extractions)


def _check_b60(extractions: list[Extraction]) -> None:
    # A url with a newline and a forged event is a bare path, not an indicator.
    (extraction,) = extractions
    assert [item.field for item in extraction.observables] == ["data.srcip"]
    assert extraction.skipped["bare_path"] == 1
    assert extraction.public() == ()


CHECKS: dict[str, Callable[[list[Extraction]], None]] = {
    "B26": _check_b26,
    "B38": _check_b38,
    "B58": _check_b58,
    "B60": _check_b60,
}
KNOWN = [case for case in CASES if case["id"] in CHECKS]


@pytest.mark.parametrize("case", KNOWN, ids=[case["id"] for case in KNOWN])
def test_case_expected_behaviour(case: dict[str, Any]) -> None:
    CHECKS[case["id"]](_extractions(case))
