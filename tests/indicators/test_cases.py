"""Reported indicator-parsing bugs, as shared cases and as this project's own inputs.

The shared cases of the ``observable_extraction`` family whose input is a
list of indicators are checked against expectations written below per case
id. The ``own_`` tests cover the same faults with inputs written for this
project, so they run without the shared corpus.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import IndicatorType as T
from iocscope.indicators.model import ScopeReason as R
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import ScopePolicy, classify_scope
from tests.support.corpus import cases_of

DEFAULT = ScopePolicy()


def _check_ip_canonical(inputs: list[str]) -> None:
    # Zone id stripped, canonical compressed lower case, IPv4-mapped unwrapped,
    # and none of them public.
    expected = {
        "2001:DB8::1": (T.IPV6, "2001:db8::1"),
        "::ffff:198.51.100.7": (T.IPV4, "198.51.100.7"),
        "fe80::1%eth0": (T.IPV6, "fe80::1"),
        "2001:db8:85a3:0:0:8a2e:370:7334": (T.IPV6, "2001:db8:85a3::8a2e:370:7334"),
    }
    assert set(inputs) == set(expected)
    for text in inputs:
        indicator = parse_indicator(text)
        assert (indicator.type, indicator.value) == expected[text], text
        assert not classify_scope(indicator, DEFAULT).is_public, text


def _check_special_ipv4(inputs: list[str]) -> None:
    expected = {
        "100.64.1.20": R.CGNAT,
        "169.254.169.254": R.LINK_LOCAL,
        "127.0.0.1": R.LOOPBACK,
        "0.0.0.0": R.UNSPECIFIED,
        "192.0.2.10": R.DOCUMENTATION,
        "198.18.0.1": R.BENCHMARK,
        "224.0.0.251": R.MULTICAST,
        "255.255.255.255": R.BROADCAST,
        "100.63.255.1": R.PUBLIC,
        "100.128.0.1": R.PUBLIC,
        "104.16.0.1": R.PUBLIC,
    }
    assert set(inputs) == set(expected)
    for text in inputs:
        assert classify_scope(parse_indicator(text), DEFAULT).reason is expected[text], text


def _check_refang(inputs: list[str]) -> None:
    expected = {
        "hxxps://malicious[.]example[.]com/dl/a.exe": "https://malicious.example.com/dl/a.exe",
        "198[.]51[.]100[.]23": "198.51.100.23",
        "evil(.)example(.)net": "evil.example.net",
        "bad[dot]example[dot]org": "bad.example.org",
        "fxp://ftp[.]example[.]com": "ftp://ftp.example.com",
    }
    assert set(inputs) == set(expected)
    for text in inputs:
        indicator = parse_indicator(text)
        assert indicator.value == expected[text]
        assert indicator.original == text
    address = classify_scope(parse_indicator("198[.]51[.]100[.]23"), DEFAULT)
    assert address.reason is R.DOCUMENTATION


def _check_hash_case(inputs: list[str]) -> None:
    indicators = [parse_indicator(text) for text in inputs]
    assert {indicator.value for indicator in indicators} == {
        "3395856ce81f2b7382dee72602f798b642f14140"
    }
    assert {indicator.type for indicator in indicators} == {T.SHA1}


def _check_idna(inputs: list[str]) -> None:
    *names, bad = inputs
    for text in names:
        indicator = parse_indicator(text)
        assert indicator.value == "xn--bcher-kva.example", text
        assert indicator.display == "b\u00fccher.example", text
    assert bad == "xn--scp--j430c.example"
    with pytest.raises(InvalidIndicatorError):
        parse_indicator(bad)


EXPECTATIONS: dict[str, Callable[[list[str]], None]] = {
    "B28": _check_ip_canonical,
    "B31": _check_special_ipv4,
    "B32": _check_refang,
    "B33": _check_hash_case,
    "B34": _check_idna,
}

IOC_CASES = [case for case in cases_of("observable_extraction") if case["input_kind"] == "ioc"]


@pytest.mark.corpus
@pytest.mark.parametrize("case", IOC_CASES, ids=[case["id"] for case in IOC_CASES])
def test_shared_case(case: dict[str, Any]) -> None:
    check = EXPECTATIONS.get(case["id"])
    assert check is not None, f"shared case {case['id']} has no expectation in this file"
    check(case["input"])


# --- the same faults with this project's own inputs --------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("2001:DB8:0:0:0:0:0:AB", T.IPV6, "2001:db8::ab"),
        ("[FE80::A%en0]:22", T.IPV6, "fe80::a"),
        ("::FFFF:203.0.113.40", T.IPV4, "203.0.113.40"),
        ("fd00:0:0:0:0:0:0:5", T.IPV6, "fd00::5"),
    ],
)
def test_own_ipv6_canonical_and_not_public(text: str, kind: T, value: str) -> None:
    indicator = parse_indicator(text)
    assert indicator.type is kind
    assert indicator.value == value
    assert not classify_scope(indicator, DEFAULT).is_public


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("100.127.255.254", R.CGNAT),
        ("169.254.0.1", R.LINK_LOCAL),
        ("127.8.8.8", R.LOOPBACK),
        ("0.0.0.1", R.UNSPECIFIED),
        ("203.0.113.200", R.DOCUMENTATION),
        ("198.19.0.1", R.BENCHMARK),
        ("239.1.2.3", R.MULTICAST),
        ("255.255.255.255", R.BROADCAST),
        ("100.63.255.255", R.PUBLIC),
        ("100.128.0.0", R.PUBLIC),
        ("151.101.1.69", R.PUBLIC),
    ],
)
def test_own_special_ipv4(text: str, reason: R) -> None:
    assert classify_scope(parse_indicator(text), DEFAULT).reason is reason


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("hXXp://dropper[.]example[.]net/stage2.bin", "http://dropper.example.net/stage2.bin"),
        ("203(.)0(.)113(.)77", "203.0.113.77"),
        ("c2{.}example{.}org", "c2.example.org"),
        ("cdn[dot]example[dot]com", "cdn.example.com"),
        ("fxp://mirror(.)example(.)com/pub", "ftp://mirror.example.com/pub"),
    ],
)
def test_own_refang_before_classification(text: str, value: str) -> None:
    indicator = parse_indicator(text)
    assert indicator.value == value
    assert indicator.original == text
    assert not classify_scope(indicator, DEFAULT).is_public


def test_own_hash_case_shares_key() -> None:
    upper = parse_indicator("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
    lower = parse_indicator("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert upper.type is T.SHA256
    assert upper.value == lower.value
    assert upper.value == upper.value.lower()


@pytest.mark.parametrize(
    "text", ["m\u00fcnchen.example", "xn--mnchen-3ya.example", "M\u00dcNCHEN.EXAMPLE."]
)
def test_own_idna_collapses(text: str) -> None:
    indicator = parse_indicator(text)
    assert indicator.value == "xn--mnchen-3ya.example"
    assert indicator.display == "m\u00fcnchen.example"


@pytest.mark.parametrize("text", ["xn--scp--j430c.example", "xn--ab-.example", "xn--zz.example"])
def test_own_invalid_punycode_rejected(text: str) -> None:
    with pytest.raises(InvalidIndicatorError):
        parse_indicator(text)
