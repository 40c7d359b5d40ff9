"""Where indicators live in a Wazuh 4.x alert: a declarative field map.

Each ``FieldRule`` names one dotted path as it appears in alerts.json, the
role a value there plays, the indicator types the field may hold and how to
split its text into candidate values. Rules are grouped by alert family only
for reading. Every rule is tried on every alert, so an alert that matches two
families (a JSON decoder that writes both ``srcip`` and ``src_ip``) is read
completely.

Field names are those of Wazuh 4.x, checked against alerts of a 4.12 agent
and against the Filebeat ingest pipeline of Wazuh 4.x
(``extensions/filebeat/7.x/wazuh-module/alerts/ingest/pipeline.json`` in
wazuh/wazuh), which geolocates ``data.srcip``,
``data.win.eventdata.ipAddress``, ``data.aws.sourceIPAddress``,
``data.aws.client_ip``, ``data.aws.httpRequest.clientIp``,
``data.aws.service.action.networkConnectionAction.remoteIpDetails.ipAddressV4``,
``data.gcp.jsonPayload.sourceIP``, ``data.office365.ClientIP``,
``data.properties.initiatedBy.user.ipAddress`` and ``data.callerIpAddress``.
The Windows EventChannel decoder of Wazuh 4.x lower-cases the first letter of
every event data name, so Sysmon's ``DestinationIp`` is ``destinationIp``.

Fields that are never read, on purpose: ``agent.*`` and ``manager.*``
describe the monitored host and the manager, not the event, and
``predecoder.hostname`` is the syslog sender.

NOTE: ``data.hostname`` is not read either. Which decoders store a requested
site there, rather than the name of the logging device, has not been
checked, and reading it for every decoder would send internal device names
to lookups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from iocscope.indicators.model import IndicatorType
from iocscope.observables.model import Role, SkipReason

IPS = frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
HOSTS = IPS | {IndicatorType.DOMAIN}
URLS = frozenset({IndicatorType.URL})
HASHES = frozenset({IndicatorType.MD5, IndicatorType.SHA1, IndicatorType.SHA256})

# Deepest nesting of lists inside lists that is walked at one path step.
_MAX_LIST_DEPTH = 4


@dataclass(frozen=True, slots=True)
class Candidate:
    """One piece of field text to parse, or to count as skipped when ``skip`` is set."""

    text: str
    type_hint: IndicatorType | None = None
    skip: SkipReason | None = None


Splitter = Callable[[str, Mapping[str, Any]], Iterable[Candidate]]
Condition = Callable[[Mapping[str, Any]], bool]
Guard = Callable[[Mapping[str, Any]], SkipReason | None]


@dataclass(frozen=True, slots=True)
class FieldRule:
    """The location of one kind of value in an alert, and how to read it.

    ``accepts`` lists the indicator types the field may hold; a value that
    parses as another type is skipped. ``splitter`` turns the field text into
    candidates and receives the whole alert, for fields that need a sibling
    (a URL path needs its host). ``condition`` decides silently whether the
    rule applies to this alert. ``guard`` returns a skip reason when the
    field is present but its values must not be used, and those values are
    counted under that reason.
    """

    path: str
    role: Role
    accepts: frozenset[IndicatorType]
    splitter: Splitter
    type_hint: IndicatorType | None = None
    condition: Condition | None = None
    guard: Guard | None = None


@dataclass(frozen=True, slots=True)
class FieldFamily:
    """The rules of one alert family, such as Sysmon or Suricata."""

    name: str
    rules: tuple[FieldRule, ...]


# --- reading paths ----------------------------------------------------------


def values_at(alert: Mapping[str, Any], path: str) -> Iterator[tuple[str, Any]]:
    """Yield ``(concrete path, value)`` for every value at a dotted ``path``.

    A ``*`` step matches every key of an object. Lists met on the way or at
    the end are walked element by element, so ``evidence.ipAddress`` reaches
    the address in each evidence object. Missing keys yield nothing.
    """
    yield from _walk(alert, path.split("."), [])


def _walk(node: Any, steps: list[str], taken: list[str]) -> Iterator[tuple[str, Any]]:
    if not steps:
        concrete = ".".join(taken)
        yield from ((concrete, leaf) for leaf in _flatten(node, 0))
        return
    for item in _flatten(node, 0):
        if not isinstance(item, Mapping):
            continue
        step, rest = steps[0], steps[1:]
        keys = [key for key in item if isinstance(key, str)] if step == "*" else [step]
        for key in keys:
            if key in item:
                yield from _walk(item[key], rest, [*taken, key])


def _flatten(node: Any, depth: int) -> Iterator[Any]:
    if not isinstance(node, list):
        yield node
        return
    if depth >= _MAX_LIST_DEPTH:
        return
    for element in node:
        yield from _flatten(element, depth + 1)


def first_value(alert: Mapping[str, Any], path: str) -> Any:
    """Return the first value at ``path``, or None when there is none."""
    return next((value for _, value in values_at(alert, path)), None)


def _text_at(alert: Mapping[str, Any], path: str) -> str:
    value = first_value(alert, path)
    return value.strip() if isinstance(value, str) else ""


# --- splitters --------------------------------------------------------------

_QUOTES = "\"'"
_LIST_SEPARATORS = re.compile(r"[,;\s]+")


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text = text[1:-1].strip()
    return text


def split_single(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield the whole value, without surrounding quotes, as one candidate."""
    yield Candidate(_unquote(value))


def split_list(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield each item of a value joined by commas, semicolons or white space.

    Used for address and host name fields, which never contain those
    characters themselves (``203.0.113.9, 10.0.0.1`` from a proxy chain).
    """
    for part in _LIST_SEPARATORS.split(value):
        text = _unquote(part)
        if text:
            yield Candidate(text)


_SYSMON_HASHES = {
    "MD5": IndicatorType.MD5,
    "SHA1": IndicatorType.SHA1,
    "SHA256": IndicatorType.SHA256,
}


def split_sysmon_hashes(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield the file hashes of a Sysmon ``Hashes`` value with their types.

    The value looks like ``SHA1=…,MD5=…,SHA256=…,IMPHASH=…``, with the
    algorithms chosen in the Sysmon configuration. IMPHASH hashes the import
    table of a PE file, not its bytes, and has the length of an MD5: it is
    skipped so that it is never looked up as one. A value without ``=`` is a
    lone hash whose type comes from its length.
    """
    for part in _unquote(value).split(","):
        name, equals, digest = part.partition("=")
        if not equals:
            if part.strip():
                yield Candidate(part.strip())
            continue
        algorithm = name.strip().upper()
        if algorithm == "IMPHASH":
            yield Candidate(digest.strip(), skip=SkipReason.IMPHASH)
        elif algorithm in _SYSMON_HASHES:
            yield Candidate(digest.strip(), type_hint=_SYSMON_HASHES[algorithm])
        else:
            yield Candidate(digest.strip(), skip=SkipReason.UNKNOWN_HASH)


def split_dns_results(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield the addresses of a Sysmon ``QueryResults`` value.

    Records are separated by ``;``. An address record is the bare address
    (IPv4 addresses may be written IPv4-mapped, ``::ffff:192.0.2.40``); any
    other record starts with ``type:`` and its number, such as
    ``type:  5 cdn.example`` for a CNAME, and is skipped.
    """
    for part in value.split(";"):
        text = _unquote(part)
        if not text:
            continue
        if text.lower().startswith("type:"):
            yield Candidate(text, skip=SkipReason.DNS_CNAME)
        else:
            yield Candidate(text)


def _is_absolute_url(text: str) -> bool:
    scheme, separator, _ = text.partition("://")
    return bool(separator) and scheme.isascii() and scheme.isalpha()


def split_full_url(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield the value when it is an absolute URL, else skip it as a bare path.

    Web access logs store only the request path in ``url``; a path names
    no server, so it is not an indicator.
    """
    text = _unquote(value)
    if _is_absolute_url(text):
        yield Candidate(text)
    else:
        yield Candidate(text, skip=SkipReason.BARE_PATH)


def split_suricata_http_url(value: str, alert: Mapping[str, Any]) -> Iterator[Candidate]:
    """Yield ``http://host[:port]/path`` built from a Suricata HTTP record.

    Suricata logs the request target in ``http.url`` and the Host header in
    ``http.hostname`` (plus ``http.http_port`` when the Host header names a
    port). Without a host name the path is skipped as a bare path.
    """
    text = _unquote(value)
    if _is_absolute_url(text):
        yield Candidate(text)
        return
    host = _text_at(alert, "data.http.hostname")
    if not host or not text.startswith("/"):
        yield Candidate(text, skip=SkipReason.BARE_PATH)
        return
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = first_value(alert, "data.http.http_port")
    port_text = str(port).strip() if isinstance(port, str | int) else ""
    suffix = f":{port_text}" if port_text and port_text != "80" else ""
    yield Candidate(f"http://{host}{suffix}{text}")


# --- conditions and guards --------------------------------------------------


def is_registry_event(alert: Mapping[str, Any]) -> SkipReason | None:
    """Return ``registry_event`` when a FIM alert is about the Windows registry.

    Wazuh 4.x FIM hashes registry values with the same ``*_after`` fields as
    files; those hashes identify no file, so they are never looked up.
    """
    rule = alert.get("rule")
    groups = rule.get("groups") if isinstance(rule, Mapping) else None
    group_list = groups if isinstance(groups, list) else [groups]
    if any(isinstance(group, str) and group.strip() == "syscheck_registry" for group in group_list):
        return SkipReason.REGISTRY_EVENT
    if _text_at(alert, "syscheck.path").upper().startswith("HKEY_"):
        return SkipReason.REGISTRY_EVENT
    if _text_at(alert, "decoder.name").startswith("syscheck_registry"):
        return SkipReason.REGISTRY_EVENT
    return None


def is_outbound(alert: Mapping[str, Any]) -> bool:
    """Return True for a GuardDuty connection that the monitored instance opened."""
    direction = _text_at(
        alert, "data.aws.service.action.networkConnectionAction.connectionDirection"
    )
    return direction.upper() == "OUTBOUND"


def _is_inbound(alert: Mapping[str, Any]) -> bool:
    return not is_outbound(alert)


# --- the field map ----------------------------------------------------------


def _ip(path: str, role: Role, **options: Any) -> FieldRule:
    return FieldRule(path, role, IPS, split_list, **options)


def _host(path: str, role: Role) -> FieldRule:
    return FieldRule(path, role, HOSTS, split_list)


def _hash(path: str, kind: IndicatorType, **options: Any) -> FieldRule:
    return FieldRule(path, Role.FILE, frozenset({kind}), split_single, type_hint=kind, **options)


GENERIC = FieldFamily(
    "generic",
    (
        _ip("data.srcip", Role.SOURCE),
        _ip("data.dstip", Role.DESTINATION),
        _ip("data.src_ip", Role.SOURCE),
        _ip("data.dst_ip", Role.DESTINATION),
        _ip("data.dest_ip", Role.DESTINATION),
        # Web access logs put the request path here, proxies a full URL.
        FieldRule("data.url", Role.URL, URLS, split_full_url),
    ),
)

SURICATA = FieldFamily(
    "suricata",
    (
        _host("data.http.hostname", Role.DESTINATION),
        FieldRule("data.http.url", Role.URL, URLS, split_suricata_http_url),
        # EVE writes the query name in ``dns.rrname`` of DNS events, in
        # ``dns.query[].rrname`` of the DNS metadata of alert events and in
        # ``dns.queries[].rrname`` in the newer DNS output format 3.
        _host("data.dns.rrname", Role.QUERY),
        _host("data.dns.query.rrname", Role.QUERY),
        _host("data.dns.queries.rrname", Role.QUERY),
        _host("data.tls.sni", Role.DESTINATION),
        _hash("data.fileinfo.md5", IndicatorType.MD5),
        _hash("data.fileinfo.sha1", IndicatorType.SHA1),
        _hash("data.fileinfo.sha256", IndicatorType.SHA256),
    ),
)

WINDOWS = FieldFamily(
    "windows",
    (
        # Logon events 4624/4625/4648: the address of the remote client.
        _ip("data.win.eventdata.ipAddress", Role.SOURCE),
    ),
)

SYSMON = FieldFamily(
    "sysmon",
    (
        # Event 3, network connection.
        _ip("data.win.eventdata.sourceIp", Role.SOURCE),
        _ip("data.win.eventdata.destinationIp", Role.DESTINATION),
        _host("data.win.eventdata.destinationHostname", Role.DESTINATION),
        # Event 22, DNS query.
        _host("data.win.eventdata.queryName", Role.QUERY),
        FieldRule("data.win.eventdata.queryResults", Role.DESTINATION, IPS, split_dns_results),
        # Events 1, 6, 7, 23, 26 log "Hashes"; event 15 logs "Hash".
        FieldRule("data.win.eventdata.hashes", Role.FILE, HASHES, split_sysmon_hashes),
        FieldRule("data.win.eventdata.hash", Role.FILE, HASHES, split_sysmon_hashes),
    ),
)

FIM = FieldFamily(
    "fim",
    (
        _hash("syscheck.md5_after", IndicatorType.MD5, guard=is_registry_event),
        _hash("syscheck.sha1_after", IndicatorType.SHA1, guard=is_registry_event),
        _hash("syscheck.sha256_after", IndicatorType.SHA256, guard=is_registry_event),
    ),
)

_GUARDDUTY = "data.aws.service.action"

AWS = FieldFamily(
    "aws",
    (
        # CloudTrail; calls made by AWS services carry the service's name
        # (``ec2.amazonaws.com``) here instead of an address, and are skipped.
        _ip("data.aws.sourceIPAddress", Role.SOURCE),
        # Load balancer access logs.
        _ip("data.aws.client_ip", Role.SOURCE),
        # WAF.
        _ip("data.aws.httpRequest.clientIp", Role.SOURCE),
        # VPC flow logs.
        _ip("data.aws.srcaddr", Role.SOURCE),
        _ip("data.aws.dstaddr", Role.DESTINATION),
        # GuardDuty: the remote side of an API call, port probe or
        # connection. A connection the instance opened goes to the remote
        # address, so that address is the destination.
        _ip(f"{_GUARDDUTY}.*.remoteIpDetails.ipAddressV4", Role.SOURCE, condition=_is_inbound),
        _ip(f"{_GUARDDUTY}.*.remoteIpDetails.ipAddressV6", Role.SOURCE, condition=_is_inbound),
        _ip(
            f"{_GUARDDUTY}.networkConnectionAction.remoteIpDetails.ipAddressV4",
            Role.DESTINATION,
            condition=is_outbound,
        ),
        _ip(
            f"{_GUARDDUTY}.networkConnectionAction.remoteIpDetails.ipAddressV6",
            Role.DESTINATION,
            condition=is_outbound,
        ),
        _ip(
            f"{_GUARDDUTY}.portProbeAction.portProbeDetails.remoteIpDetails.ipAddressV4",
            Role.SOURCE,
        ),
        _ip(
            f"{_GUARDDUTY}.portProbeAction.portProbeDetails.remoteIpDetails.ipAddressV6",
            Role.SOURCE,
        ),
        _host(f"{_GUARDDUTY}.dnsRequestAction.domain", Role.QUERY),
    ),
)

OFFICE365 = FieldFamily(
    "office365",
    (
        # ClientIP often carries a port: ``203.0.113.9:51234``, ``[2001:db8::1]:443``.
        _ip("data.office365.ClientIP", Role.SOURCE),
        _ip("data.office365.ClientIPAddress", Role.SOURCE),
        _ip("data.office365.ActorIpAddress", Role.SOURCE),
    ),
)

MS_GRAPH = FieldFamily(
    "ms-graph",
    (
        # The Wazuh ms-graph module (4.6 and later) writes each Graph object
        # under ``data.ms-graph``. Sign-ins (auditLogs/signIns) carry the
        # client address; security alerts (security/alerts_v2) list evidence
        # objects whose side in the attack is not stated.
        _ip("data.ms-graph.ipAddress", Role.SOURCE),
        _ip("data.ms-graph.evidence.ipAddress", Role.RELATED),
        FieldRule("data.ms-graph.evidence.url", Role.URL, URLS, split_full_url),
        _hash("data.ms-graph.evidence.fileDetails.sha1", IndicatorType.SHA1),
        _hash("data.ms-graph.evidence.fileDetails.sha256", IndicatorType.SHA256),
    ),
)

GCP = FieldFamily(
    "gcp",
    (
        # Cloud DNS query logs.
        _ip("data.gcp.jsonPayload.sourceIP", Role.SOURCE),
        _host("data.gcp.jsonPayload.queryName", Role.QUERY),
    ),
)

AZURE = FieldFamily(
    "azure",
    (
        _ip("data.properties.initiatedBy.user.ipAddress", Role.SOURCE),
        _ip("data.callerIpAddress", Role.SOURCE),
    ),
)

FAMILIES: tuple[FieldFamily, ...] = (
    GENERIC,
    SURICATA,
    WINDOWS,
    SYSMON,
    FIM,
    AWS,
    OFFICE365,
    MS_GRAPH,
    GCP,
    AZURE,
)
