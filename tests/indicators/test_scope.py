"""Tests of scope classification: which indicators may leave the host."""

from __future__ import annotations

import ipaddress

import pytest

from iocscope.config import ScopeSettings
from iocscope.errors import ConfigError
from iocscope.indicators.model import ScopeReason as R
from iocscope.indicators.parse import parse_indicator
from iocscope.indicators.scope import (
    ScopePolicy,
    classify_address,
    classify_domain,
    classify_scope,
)

DEFAULT = ScopePolicy()
PRIVATE_10 = "10.0.0.0/8 is private address space (RFC 1918)"


@pytest.mark.parametrize(
    ("address", "reason", "detail"),
    [
        ("0.0.0.0", R.UNSPECIFIED, "0.0.0.0/8 is the unspecified 'this network' range (RFC 1122)"),
        ("0.1.2.3", R.UNSPECIFIED, "0.0.0.0/8 is the unspecified 'this network' range (RFC 1122)"),
        ("10.1.2.3", R.PRIVATE, PRIVATE_10),
        ("172.16.0.1", R.PRIVATE, "172.16.0.0/12 is private address space (RFC 1918)"),
        ("172.31.255.255", R.PRIVATE, "172.16.0.0/12 is private address space (RFC 1918)"),
        ("192.168.1.1", R.PRIVATE, "192.168.0.0/16 is private address space (RFC 1918)"),
        (
            "100.64.1.20",
            R.CGNAT,
            "100.64.0.0/10 is shared address space for carrier-grade NAT (RFC 6598)",
        ),
        ("127.0.0.1", R.LOOPBACK, "127.0.0.0/8 is the loopback range (RFC 1122)"),
        ("169.254.169.254", R.LINK_LOCAL, "169.254.0.0/16 is link-local (RFC 3927)"),
        (
            "192.0.0.8",
            R.RESERVED,
            "192.0.0.0/24 is reserved for IETF protocol assignments (RFC 6890)",
        ),
        ("192.0.2.10", R.DOCUMENTATION, "192.0.2.0/24 is reserved for documentation (RFC 5737)"),
        (
            "198.51.100.7",
            R.DOCUMENTATION,
            "198.51.100.0/24 is reserved for documentation (RFC 5737)",
        ),
        ("203.0.113.9", R.DOCUMENTATION, "203.0.113.0/24 is reserved for documentation (RFC 5737)"),
        (
            "192.88.99.1",
            R.RESERVED,
            "192.88.99.0/24 is the retired 6to4 relay anycast range (RFC 7526)",
        ),
        ("198.18.0.1", R.BENCHMARK, "198.18.0.0/15 is reserved for benchmarking (RFC 2544)"),
        ("198.19.255.255", R.BENCHMARK, "198.18.0.0/15 is reserved for benchmarking (RFC 2544)"),
        ("224.0.0.251", R.MULTICAST, "224.0.0.0/4 is multicast (RFC 5771)"),
        ("239.255.255.250", R.MULTICAST, "224.0.0.0/4 is multicast (RFC 5771)"),
        ("240.0.0.1", R.RESERVED, "240.0.0.0/4 is reserved for future use (RFC 1112)"),
        ("255.255.255.254", R.RESERVED, "240.0.0.0/4 is reserved for future use (RFC 1112)"),
        (
            "255.255.255.255",
            R.BROADCAST,
            "255.255.255.255/32 is the limited broadcast address (RFC 919)",
        ),
        ("100.63.255.1", R.PUBLIC, "public address"),
        ("100.128.0.1", R.PUBLIC, "public address"),
        ("104.16.0.1", R.PUBLIC, "public address"),
        ("172.32.0.1", R.PUBLIC, "public address"),
        ("::", R.UNSPECIFIED, "::/128 is the unspecified address (RFC 4291)"),
        ("::1", R.LOOPBACK, "::1/128 is the loopback address (RFC 4291)"),
        ("::ffff:10.1.2.3", R.PRIVATE, PRIVATE_10),
        ("::ffff:104.16.0.1", R.PUBLIC, "public address"),
        ("100::1", R.RESERVED, "100::/64 is the discard-only prefix (RFC 6666)"),
        ("2001:2::1", R.BENCHMARK, "2001:2::/48 is reserved for benchmarking (RFC 5180)"),
        ("2001:db8::1", R.DOCUMENTATION, "2001:db8::/32 is reserved for documentation (RFC 3849)"),
        ("3fff::1", R.DOCUMENTATION, "3fff::/20 is reserved for documentation (RFC 9637)"),
        ("2001:10::1", R.RESERVED, "2001:10::/28 is the retired ORCHID prefix (RFC 4843)"),
        ("fd12:3456::1", R.PRIVATE, "fc00::/7 is unique local address space (RFC 4193)"),
        ("fe80::1", R.LINK_LOCAL, "fe80::/10 is link-local (RFC 4291)"),
        ("fec0::1", R.PRIVATE, "fec0::/10 is the retired site-local prefix (RFC 3879)"),
        ("ff02::1", R.MULTICAST, "ff00::/8 is multicast (RFC 4291)"),
        ("ff0e::1", R.MULTICAST, "ff00::/8 is multicast (RFC 4291)"),
        (
            "::198.51.100.1",
            R.RESERVED,
            "::c633:6401 is outside the global unicast range 2000::/3 and reserved (RFC 4291)",
        ),
        (
            "4000::1",
            R.RESERVED,
            "4000::1 is outside the global unicast range 2000::/3 and reserved (RFC 4291)",
        ),
        ("2606:4700::1111", R.PUBLIC, "public address"),
    ],
)
def test_classify_address(address: str, reason: R, detail: str) -> None:
    scope = classify_address(ipaddress.ip_address(address), DEFAULT)
    assert scope.reason is reason
    assert scope.detail == detail


@pytest.mark.parametrize(
    ("address", "reason", "detail"),
    [
        # 6to4 carries the IPv4 address in bits 16-47.
        (
            "2002:a00:1::1",
            R.EMBEDDED_NON_PUBLIC,
            f"6to4 address carries 10.0.0.1, and {PRIVATE_10}",
        ),
        (
            "2002:c633:6401::1",
            R.EMBEDDED_NON_PUBLIC,
            "6to4 address carries 198.51.100.1, and "
            "198.51.100.0/24 is reserved for documentation (RFC 5737)",
        ),
        ("2002:6810:1::1", R.PUBLIC, "6to4 address carries the public address 104.16.0.1"),
        # Teredo carries the server, then the client with every bit inverted.
        (
            "2001:0:a00:1::f5ff:fffe",
            R.EMBEDDED_NON_PUBLIC,
            f"Teredo address carries 10.0.0.1, and {PRIVATE_10}",
        ),
        (
            "2001:0:6810:1::f5ff:fffe",
            R.EMBEDDED_NON_PUBLIC,
            f"Teredo address carries 10.0.0.1, and {PRIVATE_10}",
        ),
        (
            "2001:0:6810:1::97ef:fffe",
            R.PUBLIC,
            "Teredo address carries the public address 104.16.0.1 and 104.16.0.1",
        ),
        # NAT64 carries the IPv4 address in the last 32 bits.
        (
            "64:ff9b::10.0.0.1",
            R.EMBEDDED_NON_PUBLIC,
            f"NAT64 address carries 10.0.0.1, and {PRIVATE_10}",
        ),
        ("64:ff9b::104.16.0.1", R.PUBLIC, "NAT64 address carries the public address 104.16.0.1"),
        (
            "64:ff9b:1::10.0.0.1",
            R.EMBEDDED_NON_PUBLIC,
            f"NAT64 address carries 10.0.0.1, and {PRIVATE_10}",
        ),
        (
            "64:ff9b:1::104.16.0.1",
            R.PRIVATE,
            "64:ff9b:1::/48 is a local-use NAT64 prefix (RFC 8215)",
        ),
    ],
)
def test_classify_embedded_ipv4(address: str, reason: R, detail: str) -> None:
    scope = classify_address(ipaddress.IPv6Address(address), DEFAULT)
    assert scope.reason is reason
    assert scope.detail == detail


@pytest.mark.parametrize(
    ("domain", "reason", "detail"),
    [
        (
            "intranet",
            R.INTERNAL_SUFFIX,
            ".intranet is a common private-network suffix that public DNS does not delegate",
        ),
        (
            "fileserver",
            R.SINGLE_LABEL,
            "'fileserver' has a single label, so it resolves only through local search domains",
        ),
        ("localhost", R.LOOPBACK, ".localhost is reserved for loopback names (RFC 6761)"),
        ("app.localhost", R.LOOPBACK, ".localhost is reserved for loopback names (RFC 6761)"),
        ("printer.local", R.INTERNAL_SUFFIX, ".local is reserved for multicast DNS (RFC 6762)"),
        ("nas.home.arpa", R.INTERNAL_SUFFIX, ".home.arpa is reserved for home networks (RFC 8375)"),
        ("db.internal", R.INTERNAL_SUFFIX, ".internal is reserved by ICANN for private use"),
        (
            "pc.lan",
            R.INTERNAL_SUFFIX,
            ".lan is a common private-network suffix that public DNS does not delegate",
        ),
        (
            "dc01.corp",
            R.INTERNAL_SUFFIX,
            ".corp is a common private-network suffix that public DNS does not delegate",
        ),
        (
            "router.home",
            R.INTERNAL_SUFFIX,
            ".home is a common private-network suffix that public DNS does not delegate",
        ),
        (
            "vault.private",
            R.INTERNAL_SUFFIX,
            ".private is a common private-network suffix that public DNS does not delegate",
        ),
        ("site.test", R.RESERVED, ".test is reserved for testing (RFC 6761)"),
        ("never.invalid", R.RESERVED, ".invalid is reserved as a never-valid name (RFC 6761)"),
        ("x.alt", R.RESERVED, ".alt is reserved for names outside DNS (RFC 9476)"),
        ("evil.example", R.DOCUMENTATION, ".example is reserved for documentation (RFC 6761)"),
        ("example.com", R.DOCUMENTATION, "example.com is reserved for documentation (RFC 6761)"),
        (
            "malicious.example.com",
            R.DOCUMENTATION,
            "example.com is reserved for documentation (RFC 6761)",
        ),
        (
            "evil.example.net",
            R.DOCUMENTATION,
            "example.net is reserved for documentation (RFC 6761)",
        ),
        (
            "bad.example.org",
            R.DOCUMENTATION,
            "example.org is reserved for documentation (RFC 6761)",
        ),
        ("notexample.com", R.PUBLIC, "public domain name"),
        ("example.co", R.PUBLIC, "public domain name"),
        ("local.evil.com", R.PUBLIC, "public domain name"),
        ("corp.com", R.PUBLIC, "public domain name"),
        ("xn--bcher-kva.de", R.PUBLIC, "public domain name"),
    ],
)
def test_classify_domain(domain: str, reason: R, detail: str) -> None:
    scope = classify_domain(domain, DEFAULT)
    assert scope.reason is reason
    assert scope.detail == detail


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("3395856ce81f2b7382dee72602f798b642f14140", R.PUBLIC),
        ("https://user@10.0.0.1/admin", R.PRIVATE),
        ("http://[fd00::1]:8080/", R.PRIVATE),
        ("http://[::ffff:127.0.0.1]/", R.LOOPBACK),
        ("https://printer.local/", R.INTERNAL_SUFFIX),
        ("https://evil.com/a.exe", R.PUBLIC),
        ("alice@dc01.corp", R.INTERNAL_SUFFIX),
        ("alice@evil.com", R.PUBLIC),
        ("198.51.100.7", R.DOCUMENTATION),
        ("2001:db8::1", R.DOCUMENTATION),
        ("evil.com", R.PUBLIC),
    ],
)
def test_classify_scope_by_type(text: str, reason: R) -> None:
    assert classify_scope(parse_indicator(text), DEFAULT).reason is reason


def test_hash_scope_detail() -> None:
    scope = classify_scope(parse_indicator("44d88612fea8a8f36de82e1278abb02f"), DEFAULT)
    assert scope.is_public
    assert scope.detail == "a file hash names no host or address"


LAB = ScopePolicy.from_settings(
    ScopeSettings(
        internal_domains=("*.Corp.Example.COM", ".b\u00fccher.example", "acme.test"),
        internal_networks=("203.0.113.0/24", "198.51.0.0/16", "2001:db8:1::/48", "104.16.0.0/16"),
        public_overrides=("198.51.100.0/24", "203.0.113.0/24", "10.99.0.0/16"),
    )
)


def test_policy_from_settings_normalises() -> None:
    assert LAB.internal_domains == ("corp.example.com", "xn--bcher-kva.example", "acme.test")
    assert LAB.internal_networks[2] == ipaddress.IPv6Network("2001:db8:1::/48")


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        (
            "corp.example.com",
            R.INTERNAL_DOMAIN,
            "corp.example.com is listed in scope.internal_domains",
        ),
        (
            "vpn.corp.example.com",
            R.INTERNAL_DOMAIN,
            "corp.example.com is listed in scope.internal_domains",
        ),
        (
            "https://shop.b\u00fccher.example/",
            R.INTERNAL_DOMAIN,
            "xn--bcher-kva.example is listed in scope.internal_domains",
        ),
        ("www.acme.test", R.INTERNAL_DOMAIN, "acme.test is listed in scope.internal_domains"),
        (
            "xcorp.example.com",
            R.DOCUMENTATION,
            "example.com is reserved for documentation (RFC 6761)",
        ),
        # On equal prefixes the internal network wins; a narrower override wins.
        ("203.0.113.9", R.INTERNAL_NETWORK, "203.0.113.0/24 is listed in scope.internal_networks"),
        ("198.51.100.9", R.PUBLIC_OVERRIDE, "198.51.100.0/24 is listed in scope.public_overrides"),
        ("198.51.7.1", R.INTERNAL_NETWORK, "198.51.0.0/16 is listed in scope.internal_networks"),
        ("10.99.1.1", R.PUBLIC_OVERRIDE, "10.99.0.0/16 is listed in scope.public_overrides"),
        ("10.98.1.1", R.PRIVATE, PRIVATE_10),
        ("104.16.0.1", R.INTERNAL_NETWORK, "104.16.0.0/16 is listed in scope.internal_networks"),
        (
            "2001:db8:1::5",
            R.INTERNAL_NETWORK,
            "2001:db8:1::/48 is listed in scope.internal_networks",
        ),
        (
            "2002:6810:1::1",
            R.EMBEDDED_NON_PUBLIC,
            "6to4 address carries 104.16.0.1, and "
            "104.16.0.0/16 is listed in scope.internal_networks",
        ),
        ("2002:c633:6401::1", R.PUBLIC, "6to4 address carries the public address 198.51.100.1"),
    ],
)
def test_policy_applies(text: str, reason: R, detail: str) -> None:
    scope = classify_scope(parse_indicator(text), LAB)
    assert scope.reason is reason
    assert scope.detail == detail


def test_override_is_public() -> None:
    assert classify_scope(parse_indicator("198.51.100.9"), LAB).is_public


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ScopeSettings(internal_networks=("10.1.2.3/8",)),
            "invalid network '10.1.2.3/8' in scope.internal_networks: 10.1.2.3/8 has host bits "
            "set; write it in CIDR notation such as 203.0.113.0/24",
        ),
        (
            ScopeSettings(public_overrides=("lab",)),
            "invalid network 'lab' in scope.public_overrides: 'lab' does not appear to be an IPv4 "
            "or IPv6 network; write it in CIDR notation such as 203.0.113.0/24",
        ),
        (
            ScopeSettings(internal_domains=("corp..example",)),
            "invalid domain 'corp..example' in scope.internal_domains: the domain name contains "
            "an empty label",
        ),
        (
            ScopeSettings(internal_domains=("10.0.0.1",)),
            "invalid domain '10.0.0.1' in scope.internal_domains: the last label '1' is all "
            "digits, so the value is not a domain name",
        ),
    ],
)
def test_policy_rejects_bad_settings(settings: ScopeSettings, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ScopePolicy.from_settings(settings)
    assert str(caught.value) == message
