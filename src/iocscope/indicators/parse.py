"""Parse text into one canonical, typed indicator.

Every indicator that reaches a cache, a source or a Wazuh event goes through
``parse_indicator``, so two spellings of the same thing (``BÜCHER.example.``
and ``xn--bcher-kva.example``, ``2001:DB8::1`` and ``2001:db8:0::1``) share one
cache key and one provider request. Input that could be read two ways, such
as the octal-looking ``010.1.1.1``, is rejected instead of guessed.

Canonical forms:

- IPv4: dotted decimal; a port is dropped.
- IPv6: compressed lower-case form, without brackets, port or zone id. An
  IPv4-mapped address (``::ffff:198.51.100.7``) becomes the IPv4 address.
- domain: lower-case A-label without the trailing dot, checked with IDNA 2008
  after UTS 46 mapping. ``display`` is the Unicode U-label form.
- URL: lower-case scheme and host, no credentials, no default port, no
  fragment; path and query are kept as written. ``host`` is the canonical host.
- hash: lower-case hex digits.
- e-mail: local part as written, canonical domain; ``host`` is the domain.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

import idna

from iocscope.errors import InvalidIndicatorError
from iocscope.indicators.model import HASH_TYPES, Indicator, IndicatorType
from iocscope.indicators.refang import refang

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Longer input is rejected before any parsing, so one huge value cannot slow
# down the processing of an alert. Apache rejects request lines over 8190
# bytes by default (LimitRequestLine), so real URLs fit.
MAX_LENGTH = 8192
# Error messages quote at most this many characters of the value, enough for
# any domain name (253 characters) and most URLs.
_QUOTE_LENGTH = 300

MAX_LABEL_LENGTH = 63
MAX_NAME_LENGTH = 253
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321, section 4.5.3.1.1

HASH_LENGTHS = {
    IndicatorType.MD5: 32,
    IndicatorType.SHA1: 40,
    IndicatorType.SHA256: 64,
    IndicatorType.SHA512: 128,
}
_HASH_BY_LENGTH = {length: kind for kind, length in HASH_LENGTHS.items()}
# A run of this many hex digits or more is read as a hash with a wrong length,
# not as a single-label host name. Such a host name is unlikely, while a
# truncated hash is a common copy-and-paste mistake.
_MIN_HASH_LIKE_LENGTH = 16

URL_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "sftp", "ws", "wss"})
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "ftps": 990,
    "sftp": 22,
}

_TYPE_NAMES = {
    IndicatorType.IPV4: "an IPv4 address",
    IndicatorType.IPV6: "an IPv6 address",
    IndicatorType.DOMAIN: "a domain name",
    IndicatorType.URL: "a URL",
    IndicatorType.MD5: "an MD5 hash",
    IndicatorType.SHA1: "a SHA-1 hash",
    IndicatorType.SHA256: "a SHA-256 hash",
    IndicatorType.SHA512: "a SHA-512 hash",
    IndicatorType.EMAIL: "an e-mail address",
}

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HEX_RE = re.compile(r"[0-9a-fA-F]+")
_DIGITS_RE = re.compile(r"[0-9]+")
_CIDR_RE = re.compile(r"[0-9a-fA-F:.\[\]]+/[0-9]{1,3}")
_WINDOWS_PATH_RE = re.compile(r"[A-Za-z]:[\\/]")
# "name:" not followed by a digit, so "example.com:443" is a host and a port.
_SCHEME_LIKE_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<rest>.*)", re.DOTALL)
_BRACKETED_RE = re.compile(r"\[(?P<address>[^\[\]]*)\](?::(?P<port>.*))?", re.DOTALL)
_ZONE_RE = re.compile(r"[0-9A-Za-z_.~-]+")
_ASCII_LABEL_RE = re.compile(r"[a-z0-9_-]+")
# Characters an unquoted local part cannot contain (RFC 5322 "specials").
_LOCAL_PART_FORBIDDEN = frozenset('"(),:;<>[\\]@')


class _RuleError(Exception):
    """A broken parsing rule; ``parse_indicator`` adds the value it quotes."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class _Host:
    """A canonical host: ``value`` for lookups and URLs, ``display`` for people."""

    value: str
    display: str
    address: IPAddress | None = None


def parse_indicator(text: str, type_hint: IndicatorType | None = None) -> Indicator:
    """Parse, refang and normalise ``text`` into an ``Indicator``.

    Without ``type_hint`` the type is detected. With it, the value must be of
    that type, except that an IPv4-mapped IPv6 address parsed with the hint
    ``ipv6`` yields an ``ipv4`` indicator, because the IPv4 address is what
    sources know. Raises ``InvalidIndicatorError`` naming the value as
    received and the broken rule; no other exception escapes for any ``str``.
    """
    try:
        cleaned = _clean(text)
        if type_hint is None:
            return _PARSERS[_detect(cleaned)](cleaned, text)
        return _parse_as(cleaned, text, type_hint)
    except _RuleError as exc:
        raise _invalid(text, exc.rule) from None


def detect_type(text: str) -> IndicatorType:
    """Return the type ``text`` has after trimming and refanging.

    Detection looks at the shape only, so ``parse_indicator`` may still reject
    the value. Raises ``InvalidIndicatorError`` when the shape matches no type
    (an empty value, a bare path, a network range, a hex run of a wrong length).
    """
    try:
        return _detect(_clean(text))
    except _RuleError as exc:
        raise _invalid(text, exc.rule) from None


def normalise_domain(name: str) -> str:
    """Return the canonical A-label form of the domain name ``name``.

    Used for configured names (internal domains, allowlists) so they compare
    equal to parsed indicators. Raises ``InvalidIndicatorError``.
    """
    try:
        return _parse_domain(_clean(name)).value
    except _RuleError as exc:
        raise _invalid(name, exc.rule) from None


def _parse_as(text: str, original: str, kind: IndicatorType) -> Indicator:
    try:
        return _PARSERS[kind](text, original)
    except _RuleError as exc:
        # When the value has the clear shape of another type, saying so helps
        # more than the rule the requested type broke. Domain is the shape
        # left when nothing else matches, so naming it adds no information.
        detected = _detect_or_none(text)
        if detected in (None, kind, IndicatorType.DOMAIN):
            raise
        raise _RuleError(
            f"expected {_TYPE_NAMES[kind]}, but the value looks like {_TYPE_NAMES[detected]}"
        ) from exc


def _detect_or_none(text: str) -> IndicatorType | None:
    try:
        return _detect(text)
    except _RuleError:
        return None


def _invalid(text: str, rule: str) -> InvalidIndicatorError:
    value = text.strip()
    if len(value) > _QUOTE_LENGTH:
        value = value[:_QUOTE_LENGTH] + "..."
    return InvalidIndicatorError(value, rule)


def _clean(text: str) -> str:
    if len(text) > MAX_LENGTH:
        raise _RuleError(f"the value is longer than {MAX_LENGTH} characters")
    cleaned = refang(text.strip())
    if not cleaned:
        raise _RuleError("the value is empty")
    if any(char.isspace() or not char.isprintable() for char in cleaned):
        raise _RuleError("the value contains white space or control characters")
    return cleaned


def _detect(text: str) -> IndicatorType:  # noqa: PLR0911 - one return per shape, in order
    if text.startswith("//"):
        raise _RuleError("a URL needs a scheme such as https:// before the host")
    if text.startswith("/") or _WINDOWS_PATH_RE.match(text):
        raise _RuleError("a path without a host is not an indicator")
    if "://" in text:
        return IndicatorType.URL
    if len(text) >= _MIN_HASH_LIKE_LENGTH and _HEX_RE.fullmatch(text):
        return _hash_type_of(text)
    if "@" in text:
        return IndicatorType.EMAIL
    if text.startswith("[") or text.count(":") >= 2:
        return IndicatorType.IPV6
    if _SCHEME_LIKE_RE.match(text):
        return IndicatorType.URL
    if "/" in text:
        raise _RuleError(_slash_rule(text))
    if _is_numeric_name(text.partition(":")[0]):
        return IndicatorType.IPV4
    return IndicatorType.DOMAIN


def _hash_type_of(text: str) -> IndicatorType:
    kind = _HASH_BY_LENGTH.get(len(text))
    if kind is None:
        raise _RuleError(
            f"{len(text)} hex digits match no supported hash "
            "(MD5 has 32, SHA-1 40, SHA-256 64, SHA-512 128)"
        )
    return kind


def _slash_rule(text: str) -> str:
    if _CIDR_RE.fullmatch(text):
        return "a network range is not an indicator; look up a single address"
    return "a URL needs a scheme such as https:// before the host"


def _is_numeric_name(host: str) -> bool:
    # A name whose last label is all digits is an IPv4 address or nothing,
    # because top-level domains are never all-numeric (RFC 3696, section 2).
    return _DIGITS_RE.fullmatch(host.rstrip(".").rpartition(".")[2]) is not None


# --- hashes -----------------------------------------------------------------


def _hash_parser(kind: IndicatorType) -> Callable[[str, str], Indicator]:
    expected = HASH_LENGTHS[kind]
    name = _TYPE_NAMES[kind]

    def parse(text: str, original: str) -> Indicator:
        bad = next((char for char in text if char not in _HEX_DIGITS), None)
        if bad is not None:
            raise _RuleError(f"{bad!r} is not a hex digit, so the value is not {name}")
        if len(text) != expected:
            raise _RuleError(f"{name} has {expected} hex digits, but the value has {len(text)}")
        value = text.lower()
        return Indicator(type=kind, value=value, original=original, display=value)

    return parse


# --- IP addresses -----------------------------------------------------------


def _parse_ipv4_indicator(text: str, original: str) -> Indicator:
    address, colon, port = text.partition(":")
    if colon:
        _parse_port(port)
    return _ip_indicator(_parse_ipv4(address), original)


def _parse_ipv6_indicator(text: str, original: str) -> Indicator:
    address = text
    if text.startswith("["):
        address, port = _split_bracketed(text)
        if port is not None:
            _parse_port(port)
    return _ip_indicator(_parse_ipv6(address), original)


def _ip_indicator(address: IPAddress, original: str) -> Indicator:
    value = str(address)
    kind = IndicatorType.IPV4 if address.version == 4 else IndicatorType.IPV6
    return Indicator(type=kind, value=value, original=original, display=value)


def _parse_ipv4(address: str) -> ipaddress.IPv4Address:
    # Leading zeros are rejected because some parsers read such an octet as
    # octal: 010.1.1.1 is 8.1.1.1 to inet_aton() and 10.1.1.1 to others.
    octets = address.split(".")
    if len(octets) != 4 or not all(_DIGITS_RE.fullmatch(octet) for octet in octets):
        raise _RuleError("an IPv4 address has four decimal octets separated by dots")
    for octet in octets:
        if len(octet) > 1 and octet.startswith("0"):
            raise _RuleError(
                f"octet {octet!r} has a leading zero, which some parsers read as octal; "
                "write it without leading zeros"
            )
        if int(octet) > 255:
            raise _RuleError(f"octet {octet!r} is greater than 255")
    return ipaddress.IPv4Address(address)


def _split_bracketed(text: str) -> tuple[str, str | None]:
    match = _BRACKETED_RE.fullmatch(text)
    if match is None:
        raise _RuleError("a bracketed IPv6 address may only be followed by ':port'")
    return match.group("address"), match.group("port")


def _parse_ipv6(address: str) -> IPAddress:
    # The zone id (%eth0) only names an interface of the host that logged the
    # address, so it is dropped. An IPv4-mapped address is returned as the
    # IPv4 address it carries.
    address, percent, zone = address.partition("%")
    if percent and not _ZONE_RE.fullmatch(zone):
        raise _RuleError(f"zone id {zone!r} after '%' is empty or has invalid characters")
    try:
        parsed = ipaddress.IPv6Address(address)
    except ipaddress.AddressValueError:
        raise _RuleError("not a valid IPv6 address") from None
    if parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _parse_port(port: str) -> int:
    if not _DIGITS_RE.fullmatch(port) or int(port) > 65535:
        raise _RuleError(f"port {port!r} is not a number from 0 to 65535")
    return int(port)


# --- domain names -----------------------------------------------------------


def _parse_domain_indicator(text: str, original: str) -> Indicator:
    name = text
    if text.count(":") == 1:
        name, _, port = text.partition(":")
        _parse_port(port)
    host = _parse_domain(name)
    return Indicator(
        type=IndicatorType.DOMAIN, value=host.value, original=original, display=host.display
    )


def _parse_domain(name: str) -> _Host:
    # ASCII labels may contain letters, digits, hyphens and underscores, as
    # real host names in logs do (_dmarc, r3---sn-abc). Browsers accept them
    # too, because the WHATWG URL standard skips the IDNA hyphen checks.
    # Other labels must be IDNA 2008. Length limits apply to the A-label form.
    mapped = name.lower() if name.isascii() else _uts46_map(name)
    mapped = mapped.removesuffix(".")
    if not mapped:
        raise _RuleError("the domain name is empty")
    labels = mapped.split(".")
    if _DIGITS_RE.fullmatch(labels[-1]):
        raise _RuleError(
            f"the last label {labels[-1]!r} is all digits, so the value is not a domain name"
        )
    forms = [_label_forms(label) for label in labels]
    value = ".".join(alabel for alabel, _ in forms)
    if len(value) > MAX_NAME_LENGTH:
        raise _RuleError(
            f"the domain name has {len(value)} characters; the maximum is {MAX_NAME_LENGTH}"
        )
    return _Host(value=value, display=".".join(ulabel for _, ulabel in forms))


def _uts46_map(name: str) -> str:
    # UTS 46 mapping lower-cases, folds width variants and maps the ideographic
    # full stop to ".". Mapping is non-transitional, so "ß" stays "ß" as in
    # IDNA 2008.
    try:
        return idna.uts46_remap(name, std3_rules=False, transitional=False)
    except UnicodeError:
        raise _RuleError("the domain name contains a character that IDNA does not allow") from None


def _label_forms(label: str) -> tuple[str, str]:
    """Return the A-label and U-label forms of one mapped label."""
    if not label:
        raise _RuleError("the domain name contains an empty label")
    if not label.isascii():
        return _encode_ulabel(label), label
    if len(label) > MAX_LABEL_LENGTH:
        raise _RuleError(f"label {_short(label)!r} is longer than {MAX_LABEL_LENGTH} characters")
    if label.startswith("xn--"):
        return label, _decode_alabel(label)
    if not _ASCII_LABEL_RE.fullmatch(label):
        bad = next(char for char in label if not _ASCII_LABEL_RE.fullmatch(char))
        raise _RuleError(
            f"label {_short(label)!r} contains {bad!r}, which is not allowed in a host name"
        )
    return label, label


def _encode_ulabel(label: str) -> str:
    invalid = f"label {_short(label)!r} is not a valid IDNA 2008 label"
    try:
        punycode = label.encode("punycode")
    except UnicodeError:
        raise _RuleError(invalid) from None
    if len(punycode) + len("xn--") > MAX_LABEL_LENGTH:
        raise _RuleError(
            f"label {_short(label)!r} is longer than {MAX_LABEL_LENGTH} characters as an A-label"
        )
    try:
        return idna.alabel(label).decode("ascii")
    except UnicodeError:
        raise _RuleError(invalid) from None


def _decode_alabel(label: str) -> str:
    # The round trip also rejects A-labels that decode but are not the
    # canonical encoding of their U-label.
    invalid = f"label {_short(label)!r} is not valid punycode for an IDNA 2008 label"
    try:
        ulabel = idna.ulabel(label)
        canonical = idna.alabel(ulabel).decode("ascii")
    except UnicodeError:
        raise _RuleError(invalid) from None
    if canonical != label:
        raise _RuleError(invalid)
    return ulabel


def _short(label: str) -> str:
    return label if len(label) <= 70 else label[:70] + "..."


# --- URLs -------------------------------------------------------------------


def _parse_url_indicator(text: str, original: str) -> Indicator:
    match = _URL_RE.fullmatch(text)
    if match is None:
        raise _RuleError("a URL starts with a scheme such as https://")
    scheme = match.group("scheme").lower()
    if scheme not in URL_SCHEMES:
        supported = ", ".join(sorted(URL_SCHEMES))
        raise _RuleError(f"unsupported URL scheme {scheme!r}; supported schemes: {supported}")
    rest = match.group("rest")
    if not rest.startswith("//"):
        raise _RuleError("a URL needs '//' and a host after the scheme")
    authority, tail = _split_authority(rest[2:])
    host, port = _parse_authority(authority)
    # The fragment never reaches the server, and phishing links often carry
    # the victim's e-mail address there, so it is dropped before any lookup.
    tail = tail.partition("#")[0]
    port_part = "" if port is None or port == DEFAULT_PORTS[scheme] else f":{port}"
    bracketed = host.address is not None and host.address.version == 6
    netloc = f"[{host.value}]" if bracketed else host.value
    display_netloc = f"[{host.display}]" if bracketed else host.display
    return Indicator(
        type=IndicatorType.URL,
        value=f"{scheme}://{netloc}{port_part}{tail}",
        original=original,
        display=f"{scheme}://{display_netloc}{port_part}{tail}",
        host=host.value,
    )


def _split_authority(after_slashes: str) -> tuple[str, str]:
    # Browsers end the authority at "/", "?", "#" and, for web schemes, "\".
    # Doing the same gives "http://evil.example\@good.example/" the host a
    # browser would contact.
    for index, char in enumerate(after_slashes):
        if char in "/?#\\":
            return after_slashes[:index], after_slashes[index:]
    return after_slashes, ""


def _parse_authority(authority: str) -> tuple[_Host, int | None]:
    # Credentials are dropped because they name an account, never the
    # server. The last "@" ends them, as in browsers.
    hostport = authority.rpartition("@")[2]
    port: str | None
    if hostport.startswith("["):
        address_text, port = _split_bracketed(hostport)
        address = _parse_ipv6(address_text)
        host = _Host(value=str(address), display=str(address), address=address)
    else:
        host_text, _, port = hostport.partition(":")
        host = _parse_url_host(host_text)
    return host, _parse_port(port) if port else None


def _parse_url_host(host_text: str) -> _Host:
    if not host_text:
        raise _RuleError("the URL has no host")
    if _is_numeric_name(host_text):
        address = _parse_ipv4(host_text)
        return _Host(value=str(address), display=str(address), address=address)
    return _parse_domain(host_text)


# --- e-mail addresses -------------------------------------------------------


def _parse_email_indicator(text: str, original: str) -> Indicator:
    address = text[len("mailto:") :] if text.lower().startswith("mailto:") else text
    local, at, domain = address.rpartition("@")
    if not at:
        raise _RuleError("an e-mail address needs a local part, '@' and a domain")
    _check_local_part(local)
    host = _parse_domain(domain)
    return Indicator(
        type=IndicatorType.EMAIL,
        value=f"{local}@{host.value}",
        original=original,
        display=f"{local}@{host.display}",
        host=host.value,
    )


def _check_local_part(local: str) -> None:
    if not local:
        raise _RuleError("the local part before '@' is empty")
    if len(local) > MAX_LOCAL_PART_LENGTH:
        raise _RuleError(f"the local part is longer than {MAX_LOCAL_PART_LENGTH} characters")
    bad = next((char for char in local if char in _LOCAL_PART_FORBIDDEN), None)
    if bad is not None:
        raise _RuleError(f"the local part contains {bad!r}; quoted local parts are not supported")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise _RuleError("the local part starts or ends with a dot or has two dots in a row")


_PARSERS: dict[IndicatorType, Callable[[str, str], Indicator]] = {
    IndicatorType.IPV4: _parse_ipv4_indicator,
    IndicatorType.IPV6: _parse_ipv6_indicator,
    IndicatorType.DOMAIN: _parse_domain_indicator,
    IndicatorType.URL: _parse_url_indicator,
    IndicatorType.EMAIL: _parse_email_indicator,
    **{kind: _hash_parser(kind) for kind in HASH_TYPES},
}
