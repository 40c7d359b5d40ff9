"""Property tests of parsing, refanging and scope over generated input."""

from __future__ import annotations

import ipaddress
import string

from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.provisional import domains, urls

from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import IndicatorType
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.refang import refang
from iocscope.indicators.scope import (
    IPV4_RANGES,
    IPV6_RANGES,
    ScopePolicy,
    SpecialRange,
    classify_address,
    classify_scope,
)

DEFAULT = ScopePolicy()

DOT_MARKERS = ["[.]", "(.)", "{.}", "[dot]", "(dot)", "{DOT}", "[ . ]", "\\."]
SCHEME_MARKERS = {"http": ["hxxp", "hXXp", "hxtp"], "https": ["hxxps", "HXXPS"], "ftp": ["fxp"]}

# Text built from the characters that steer parsing reaches far more code
# paths than uniform Unicode text does.
STEERING = string.ascii_letters + string.digits + ".:/@[](){}%-_\\#?= \u00fc\u00df\u3002\u2764"
steering_text = st.text(alphabet=STEERING, max_size=60)
hex_text = st.text(alphabet="0123456789abcdefABCDEF", min_size=14, max_size=130)
punycode_text = st.builds(
    lambda tail: f"xn--{tail}.example", st.text(alphabet=STEERING, max_size=20)
)
ip_text = st.ip_addresses().map(str)
indicator_like = st.one_of(
    ip_text,
    domains(),
    urls(),
    st.emails(),
    hex_text,
    punycode_text,
    steering_text,
    st.text(max_size=80),
)
hints = st.none() | st.sampled_from(list(IndicatorType))


def _defang(text: str, markers: list[str]) -> str:
    parts = text.split(".")
    return (
        "".join(part + markers[index % len(markers)] for index, part in enumerate(parts[:-1]))
        + parts[-1]
    )


@given(text=indicator_like, hint=hints)
@example(text="xn--scp--j430c.example", hint=None)
@example(text="[::]:80", hint=None)
@example(text="http://[::ffff:1.2.3.4%zz]:0/", hint=IndicatorType.URL)
def test_parse_raises_only_invalid_indicator(text: str, hint: IndicatorType | None) -> None:
    try:
        indicator = parse_indicator(text, hint)
    except InvalidIndicatorError as exc:
        rule = exc.rule
    else:
        assert indicator.original == text
        assert classify_scope(indicator, DEFAULT).reason
        return
    assert rule


@given(text=indicator_like)
def test_parse_is_idempotent(text: str) -> None:
    try:
        first = parse_indicator(text)
    except InvalidIndicatorError:
        assume(False)
        return
    again = parse_indicator(first.value)
    assert again.value == first.value
    assert again.type is first.type
    assert again.display == first.display
    assert again.host == first.host


@given(text=indicator_like)
def test_parse_with_own_type_is_idempotent(text: str) -> None:
    try:
        first = parse_indicator(text)
    except InvalidIndicatorError:
        assume(False)
        return
    assert parse_indicator(first.value, first.type).value == first.value


@given(text=st.text(max_size=80) | steering_text)
def test_refang_is_stable(text: str) -> None:
    once = refang(text)
    assert refang(once) == once


@given(address=st.ip_addresses(v=4), markers=st.lists(st.sampled_from(DOT_MARKERS), min_size=1))
def test_refang_restores_ipv4(address: ipaddress.IPv4Address, markers: list[str]) -> None:
    defanged = _defang(str(address), markers)
    assert refang(defanged) == str(address)
    assert parse_indicator(defanged).value == str(address)


@given(name=domains(), markers=st.lists(st.sampled_from(DOT_MARKERS), min_size=1))
def test_refang_restores_domain(name: str, markers: list[str]) -> None:
    defanged = _defang(name, markers)
    assert refang(defanged) == name
    assert parse_indicator(defanged).value == parse_indicator(name).value


@given(
    name=domains(),
    scheme=st.sampled_from(sorted(SCHEME_MARKERS)),
    data=st.data(),
)
def test_refang_restores_url(name: str, scheme: str, data: st.DataObject) -> None:
    fake = data.draw(st.sampled_from(SCHEME_MARKERS[scheme]))
    separator = data.draw(st.sampled_from(["://", "[://]", "[:]//"]))
    defanged = f"{fake}{separator}{_defang(name, DOT_MARKERS)}/a"
    assert refang(defanged) == f"{scheme}://{name}/a"


@given(address=st.ip_addresses(v=4))
def test_ipv4_matches_ipaddress(address: ipaddress.IPv4Address) -> None:
    indicator = parse_indicator(str(address))
    assert indicator.type is IndicatorType.IPV4
    assert indicator.value == str(address)


@given(address=st.ip_addresses(v=6), upper=st.booleans(), port=st.none() | st.integers(0, 65535))
def test_ipv6_matches_ipaddress(
    address: ipaddress.IPv6Address, upper: bool, port: int | None
) -> None:
    text = address.exploded.upper() if upper else address.exploded
    if port is not None:
        text = f"[{text}]:{port}"
    expected = address.ipv4_mapped or address
    indicator = parse_indicator(text)
    assert indicator.value == str(expected)
    assert indicator.type is (IndicatorType.IPV4 if expected.version == 4 else IndicatorType.IPV6)


def _address_in(
    entry: SpecialRange,
) -> st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    network = entry.network
    first = int(network.network_address)
    return st.integers(first, first + network.num_addresses - 1).map(
        lambda number: (
            ipaddress.ip_address(number) if network.version == 4 else ipaddress.IPv6Address(number)
        )
    )


@given(data=st.data(), entry=st.sampled_from(IPV4_RANGES + IPV6_RANGES))
def test_special_ranges_are_never_public(data: st.DataObject, entry: SpecialRange) -> None:
    address = data.draw(_address_in(entry))
    scope = classify_address(address, DEFAULT)
    assert not scope.is_public
    # Ranges may nest (255.255.255.255 inside 240.0.0.0/4); the first wins.
    table = IPV4_RANGES if address.version == 4 else IPV6_RANGES
    first = next(candidate for candidate in table if address in candidate.network)
    assert scope.reason is first.reason


@given(address=st.ip_addresses(v=4))
def test_public_ipv4_is_global_for_python(address: ipaddress.IPv4Address) -> None:
    # The tables are stricter than ipaddress, never looser: whatever they call
    # public, Python also calls global.
    if classify_address(address, DEFAULT).is_public:
        assert address.is_global
