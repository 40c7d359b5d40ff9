"""Tests of parse_indicator and detect_type: canonical forms and exact errors."""

from __future__ import annotations

import pytest

from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import IndicatorType as T
from iocscope.indicators.parse import detect_type, normalise_domain, parse_indicator

SHA256 = "275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F"
SHA512 = "CF83E1357EEFB8BDF1542850D66D8007D620E4050B5715DC83F4A921D36CE9CE" * 2


@pytest.mark.parametrize(
    ("text", "kind", "value", "display", "host"),
    [
        # IPv4
        ("198.51.100.7", T.IPV4, "198.51.100.7", "198.51.100.7", None),
        ("  203.0.113.9:443\n", T.IPV4, "203.0.113.9", "203.0.113.9", None),
        ("0.0.0.0", T.IPV4, "0.0.0.0", "0.0.0.0", None),
        ("198[.]51[.]100[.]23", T.IPV4, "198.51.100.23", "198.51.100.23", None),
        # IPv6
        ("2001:DB8::1", T.IPV6, "2001:db8::1", "2001:db8::1", None),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", T.IPV6, "2001:db8::1", "2001:db8::1", None),
        ("[2001:db8::1]", T.IPV6, "2001:db8::1", "2001:db8::1", None),
        ("[2001:db8::1]:443", T.IPV6, "2001:db8::1", "2001:db8::1", None),
        ("fe80::1%eth0", T.IPV6, "fe80::1", "fe80::1", None),
        ("[fe80::1%25]:8080", T.IPV6, "fe80::1", "fe80::1", None),
        (
            "2001:db8:85a3:0:0:8a2e:370:7334",
            T.IPV6,
            "2001:db8:85a3::8a2e:370:7334",
            "2001:db8:85a3::8a2e:370:7334",
            None,
        ),
        ("::", T.IPV6, "::", "::", None),
        # IPv4-mapped IPv6 becomes the IPv4 address
        ("::ffff:198.51.100.7", T.IPV4, "198.51.100.7", "198.51.100.7", None),
        ("::FFFF:C633:6407", T.IPV4, "198.51.100.7", "198.51.100.7", None),
        ("[::ffff:198.51.100.7]:443", T.IPV4, "198.51.100.7", "198.51.100.7", None),
        # domains
        ("Example.COM.", T.DOMAIN, "example.com", "example.com", None),
        ("evil(.)example(.)net", T.DOMAIN, "evil.example.net", "evil.example.net", None),
        ("b\u00fccher.example", T.DOMAIN, "xn--bcher-kva.example", "b\u00fccher.example", None),
        ("XN--BCHER-KVA.example", T.DOMAIN, "xn--bcher-kva.example", "b\u00fccher.example", None),
        (
            "B\u00dcCHER\u3002EXAMPLE",
            T.DOMAIN,
            "xn--bcher-kva.example",
            "b\u00fccher.example",
            None,
        ),
        ("fa\u00df.example", T.DOMAIN, "xn--fa-hia.example", "fa\u00df.example", None),
        ("_dmarc.example.org", T.DOMAIN, "_dmarc.example.org", "_dmarc.example.org", None),
        (
            "r3---sn-abc.googlevideo.com",
            T.DOMAIN,
            "r3---sn-abc.googlevideo.com",
            "r3---sn-abc.googlevideo.com",
            None,
        ),
        ("example.com:8443", T.DOMAIN, "example.com", "example.com", None),
        ("intranet", T.DOMAIN, "intranet", "intranet", None),
        ("deadbeef", T.DOMAIN, "deadbeef", "deadbeef", None),
        ("a" * 63 + ".example", T.DOMAIN, "a" * 63 + ".example", "a" * 63 + ".example", None),
        # URLs
        (
            "hxxps://user:pass@Evil[.]Example:443/Path?q=1#victim@example.org",
            T.URL,
            "https://evil.example/Path?q=1",
            "https://evil.example/Path?q=1",
            "evil.example",
        ),
        ("https://user:pass@host/", T.URL, "https://host/", "https://host/", "host"),
        (
            "fxp://ftp[.]example[.]com",
            T.URL,
            "ftp://ftp.example.com",
            "ftp://ftp.example.com",
            "ftp.example.com",
        ),
        (
            "HTTP://198.51.100.7:8080/x",
            T.URL,
            "http://198.51.100.7:8080/x",
            "http://198.51.100.7:8080/x",
            "198.51.100.7",
        ),
        (
            "http://[2001:DB8::1]:80/",
            T.URL,
            "http://[2001:db8::1]/",
            "http://[2001:db8::1]/",
            "2001:db8::1",
        ),
        (
            "http://[::ffff:198.51.100.7]/",
            T.URL,
            "http://198.51.100.7/",
            "http://198.51.100.7/",
            "198.51.100.7",
        ),
        (
            "https://b\u00fccher.example/\u00e4",
            T.URL,
            "https://xn--bcher-kva.example/\u00e4",
            "https://b\u00fccher.example/\u00e4",
            "xn--bcher-kva.example",
        ),
        ("wss://example.net", T.URL, "wss://example.net", "wss://example.net", "example.net"),
        (
            "sftp://files.example.com:22/x",
            T.URL,
            "sftp://files.example.com/x",
            "sftp://files.example.com/x",
            "files.example.com",
        ),
        (
            "ftp://files.example.com:2121",
            T.URL,
            "ftp://files.example.com:2121",
            "ftp://files.example.com:2121",
            "files.example.com",
        ),
        (
            "http://host.example:/a",
            T.URL,
            "http://host.example/a",
            "http://host.example/a",
            "host.example",
        ),
        (
            "http://evil.example\\@good.example/",
            T.URL,
            "http://evil.example\\@good.example/",
            "http://evil.example\\@good.example/",
            "evil.example",
        ),
        (
            "hxxp[://]example[.]com/a",
            T.URL,
            "http://example.com/a",
            "http://example.com/a",
            "example.com",
        ),
        # e-mail addresses
        (
            "Alice.Smith@Example.COM",
            T.EMAIL,
            "Alice.Smith@example.com",
            "Alice.Smith@example.com",
            "example.com",
        ),
        (
            "mailto:bob@b\u00fccher.example",
            T.EMAIL,
            "bob@xn--bcher-kva.example",
            "bob@b\u00fccher.example",
            "xn--bcher-kva.example",
        ),
        (
            "alice[at]example[.]org",
            T.EMAIL,
            "alice@example.org",
            "alice@example.org",
            "example.org",
        ),
        ("root@localhost", T.EMAIL, "root@localhost", "root@localhost", "localhost"),
        # hashes
        (
            "44D88612FEA8A8F36DE82E1278ABB02F",
            T.MD5,
            "44d88612fea8a8f36de82e1278abb02f",
            "44d88612fea8a8f36de82e1278abb02f",
            None,
        ),
        (
            "3395856CE81F2B7382DEE72602F798B642F14140",
            T.SHA1,
            "3395856ce81f2b7382dee72602f798b642f14140",
            "3395856ce81f2b7382dee72602f798b642f14140",
            None,
        ),
        (SHA256, T.SHA256, SHA256.lower(), SHA256.lower(), None),
        (SHA512, T.SHA512, SHA512.lower(), SHA512.lower(), None),
    ],
)
def test_parse_valid(text: str, kind: T, value: str, display: str, host: str | None) -> None:
    indicator = parse_indicator(text)
    assert indicator.type is kind
    assert indicator.value == value
    assert indicator.display == display
    assert indicator.host == host
    assert indicator.original == text


HASH_RULE = "hex digits match no supported hash (MD5 has 32, SHA-1 40, SHA-256 64, SHA-512 128)"
SCHEMES = "ftp, ftps, http, https, sftp, ws, wss"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid indicator '': the value is empty"),
        ("   ", "invalid indicator '': the value is empty"),
        ("/index.php", "invalid indicator '/index.php': a path without a host is not an indicator"),
        (
            "C:\\Windows\\evil.exe",
            "invalid indicator 'C:\\\\Windows\\\\evil.exe': "
            "a path without a host is not an indicator",
        ),
        (
            "010.1.1.1",
            "invalid indicator '010.1.1.1': octet '010' has a leading zero, which some "
            "parsers read as octal; write it without leading zeros",
        ),
        ("198.51.100.256", "invalid indicator '198.51.100.256': octet '256' is greater than 255"),
        (
            "1.2.3",
            "invalid indicator '1.2.3': an IPv4 address has four decimal octets separated by dots",
        ),
        (
            "0x7f.0.0.1",
            "invalid indicator '0x7f.0.0.1': an IPv4 address has four decimal octets "
            "separated by dots",
        ),
        (
            "2130706433",
            "invalid indicator '2130706433': an IPv4 address has four decimal octets "
            "separated by dots",
        ),
        (
            "198.51.100.7:99999",
            "invalid indicator '198.51.100.7:99999': port '99999' is not a number from 0 to 65535",
        ),
        ("2001:db8::g", "invalid indicator '2001:db8::g': not a valid IPv6 address"),
        (
            "[2001:db8::1]x",
            "invalid indicator '[2001:db8::1]x': a bracketed IPv6 address may only "
            "be followed by ':port'",
        ),
        (
            "fe80::1%",
            "invalid indicator 'fe80::1%': zone id '' after '%' is empty or has invalid characters",
        ),
        (
            "a" * 64 + ".example",
            f"invalid indicator '{'a' * 64}.example': label '{'a' * 64}' is "
            "longer than 63 characters",
        ),
        (
            ("a" * 63 + ".") * 4 + "com",
            f"invalid indicator '{('a' * 63 + '.') * 4}com': the "
            "domain name has 259 characters; the maximum is 253",
        ),
        ("a..example", "invalid indicator 'a..example': the domain name contains an empty label"),
        (".example", "invalid indicator '.example': the domain name contains an empty label"),
        (
            "exa!mple.com",
            "invalid indicator 'exa!mple.com': label 'exa!mple' contains '!', which "
            "is not allowed in a host name",
        ),
        (
            "i\u2764.example",
            "invalid indicator 'i\u2764.example': label 'i\u2764' is not a valid IDNA 2008 label",
        ),
        (
            "xn--scp--j430c.example",
            "invalid indicator 'xn--scp--j430c.example': label "
            "'xn--scp--j430c' is not valid punycode for an IDNA 2008 label",
        ),
        (
            "xn--.example",
            "invalid indicator 'xn--.example': label 'xn--' is not valid punycode "
            "for an IDNA 2008 label",
        ),
        (
            "ex ample.com",
            "invalid indicator 'ex ample.com': the value contains white space or "
            "control characters",
        ),
        (
            "exa\x00mple.com",
            "invalid indicator 'exa\\x00mple.com': the value contains white space "
            "or control characters",
        ),
        (
            "d41d8cd98f00b204e9800998ecf8427e0",
            f"invalid indicator 'd41d8cd98f00b204e9800998ecf8427e0': 33 {HASH_RULE}",
        ),
        ("d41d8cd98f00b204", f"invalid indicator 'd41d8cd98f00b204': 16 {HASH_RULE}"),
        ("https:///path", "invalid indicator 'https:///path': the URL has no host"),
        # URL credentials are masked in the message, even in a rejected value.
        ("https://user@/", "invalid indicator 'https://***@/': the URL has no host"),
        (
            "http:example.com",
            "invalid indicator 'http:example.com': a URL needs '//' and a host after the scheme",
        ),
        (
            "file:///etc/passwd",
            f"invalid indicator 'file:///etc/passwd': unsupported URL scheme "
            f"'file'; supported schemes: {SCHEMES}",
        ),
        (
            "javascript:alert(1)",
            f"invalid indicator 'javascript:alert(1)': unsupported URL scheme "
            f"'javascript'; supported schemes: {SCHEMES}",
        ),
        (
            "http://010.0.0.1/",
            "invalid indicator 'http://010.0.0.1/': octet '010' has a leading "
            "zero, which some parsers read as octal; write it without leading zeros",
        ),
        (
            "http://example.com:http/",
            "invalid indicator 'http://example.com:http/': port 'http' "
            "is not a number from 0 to 65535",
        ),
        (
            "198.51.100.0/24",
            "invalid indicator '198.51.100.0/24': a network range is not an "
            "indicator; look up a single address",
        ),
        (
            "example.com/index.php",
            "invalid indicator 'example.com/index.php': a URL needs a "
            "scheme such as https:// before the host",
        ),
        (
            "//example.com/x",
            "invalid indicator '//example.com/x': a URL needs a scheme such as "
            "https:// before the host",
        ),
        ("@example.com", "invalid indicator '@example.com': the local part before '@' is empty"),
        ("alice@", "invalid indicator 'alice@': the domain name is empty"),
        (
            "a" * 65 + "@example.com",
            f"invalid indicator '{'a' * 65}@example.com': the local "
            "part is longer than 64 characters",
        ),
        (
            "a..b@example.com",
            "invalid indicator 'a..b@example.com': the local part starts or "
            "ends with a dot or has two dots in a row",
        ),
        (
            "a:b@example.com",
            "invalid indicator 'a:b@example.com': the local part contains ':'; "
            "quoted local parts are not supported",
        ),
        (
            "alice@198.51.100.7",
            "invalid indicator 'alice@198.51.100.7': the last label '7' is "
            "all digits, so the value is not a domain name",
        ),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        parse_indicator(text)
    assert str(caught.value) == message


def test_parse_error_carries_value_and_rule() -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        parse_indicator(" 010.1.1.1 ")
    assert caught.value.value == "010.1.1.1"
    assert caught.value.rule.startswith("octet '010' has a leading zero")


def test_parse_error_shortens_huge_value() -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        parse_indicator("a" * 9000)
    assert caught.value.value == "a" * 300 + "..."
    assert caught.value.rule == "the value is longer than 8192 characters"


@pytest.mark.parametrize(
    ("text", "hint", "kind", "value"),
    [
        ("198.51.100.7", T.IPV4, T.IPV4, "198.51.100.7"),
        ("2001:DB8::1", T.IPV6, T.IPV6, "2001:db8::1"),
        ("::ffff:198.51.100.7", T.IPV6, T.IPV4, "198.51.100.7"),
        ("Example.com", T.DOMAIN, T.DOMAIN, "example.com"),
        (
            "deadbeefdeadbeefdeadbeefdeadbeef",
            T.DOMAIN,
            T.DOMAIN,
            "deadbeefdeadbeefdeadbeefdeadbeef",
        ),
        ("hxxp://example[.]com/", T.URL, T.URL, "http://example.com/"),
        ("a@example.com", T.EMAIL, T.EMAIL, "a@example.com"),
        ("44D88612FEA8A8F36DE82E1278ABB02F", T.MD5, T.MD5, "44d88612fea8a8f36de82e1278abb02f"),
    ],
)
def test_parse_with_hint(text: str, hint: T, kind: T, value: str) -> None:
    indicator = parse_indicator(text, hint)
    assert indicator.type is kind
    assert indicator.value == value


@pytest.mark.parametrize(
    ("text", "hint", "rule"),
    [
        (
            "2001:db8::1",
            T.IPV4,
            "expected an IPv4 address, but the value looks like an IPv6 address",
        ),
        (
            "198.51.100.7",
            T.IPV6,
            "expected an IPv6 address, but the value looks like an IPv4 address",
        ),
        (
            "https://example.com/",
            T.DOMAIN,
            "expected a domain name, but the value looks like a URL",
        ),
        (
            "44d88612fea8a8f36de82e1278abb02f",
            T.SHA1,
            "expected a SHA-1 hash, but the value looks like an MD5 hash",
        ),
        (
            "44d88612fea8a8f36de82e1278abb02",
            T.MD5,
            "an MD5 hash has 32 hex digits, but the value has 31",
        ),
        (
            "44d88612fea8a8f36de82e1278abb0zz",
            T.MD5,
            "'z' is not a hex digit, so the value is not an MD5 hash",
        ),
        ("example.com", T.IPV4, "an IPv4 address has four decimal octets separated by dots"),
        ("example.com", T.URL, "a URL starts with a scheme such as https://"),
        ("example.com", T.EMAIL, "an e-mail address needs a local part, '@' and a domain"),
        (
            "198.51.100.7",
            T.DOMAIN,
            "expected a domain name, but the value looks like an IPv4 address",
        ),
    ],
)
def test_parse_hint_mismatch(text: str, hint: T, rule: str) -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        parse_indicator(text, hint)
    assert caught.value.rule == rule


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("198[.]51[.]100[.]7", T.IPV4),
        ("010.1.1.1", T.IPV4),
        ("fe80::1%eth0", T.IPV6),
        ("[2001:db8::1]:443", T.IPV6),
        ("example[.]com", T.DOMAIN),
        ("hxxps://example.com", T.URL),
        ("gopher:x", T.URL),
        ("a[at]example.com", T.EMAIL),
        ("44d88612fea8a8f36de82e1278abb02f", T.MD5),
        ("3395856ce81f2b7382dee72602f798b642f14140", T.SHA1),
        (SHA256, T.SHA256),
        (SHA512, T.SHA512),
    ],
)
def test_detect_type(text: str, kind: T) -> None:
    assert detect_type(text) is kind


def test_detect_type_rejects_path() -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        detect_type("/index.php")
    assert str(caught.value) == (
        "invalid indicator '/index.php': a path without a host is not an indicator"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Corp.Example.COM.", "corp.example.com"),
        ("b\u00fccher.example", "xn--bcher-kva.example"),
        ("intranet", "intranet"),
    ],
)
def test_normalise_domain(name: str, value: str) -> None:
    assert normalise_domain(name) == value


def test_normalise_domain_rejects_address() -> None:
    with pytest.raises(InvalidIndicatorError) as caught:
        normalise_domain("198.51.100.7")
    assert (
        caught.value.rule == "the last label '7' is all digits, so the value is not a domain name"
    )
