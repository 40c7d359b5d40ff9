"""Parsers for the published formats of bulk feeds.

Each parser is a pure function from the text of a feed file to ``FeedEntry``
values. Parsers are tolerant: blank lines, comments, a byte order mark and
CRLF line ends are skipped, and a line that cannot be read is counted in a
``ParseReport`` (with the first few as examples) instead of stopping the
parse. ``parse_feed`` is the entry point; ``iter_feed`` streams entries for
large files.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from iocscope.indicators.model import IndicatorType
from iocscope.sources.feeds.catalogue import FeedSpec
from iocscope.sources.feeds.index import (
    EntryMeta,
    IpKey,
    normalise_domain,
    normalise_hash,
    normalise_url,
    parse_ip_key,
)

MAX_EXAMPLES = 5
_COMMENTS = frozenset("#;")
_NO_META = EntryMeta()
# IPsum publishes how many blocklists name each address; one or two lists
# are weak evidence, five or more are strong. With the feed's weight of 0.9,
# five lists (confidence 80) score 72: malicious at the default threshold.
_IPSUM_CONFIDENCE = {1: 20, 2: 35, 3: 50, 4: 65, 5: 80, 6: 85, 7: 88, 8: 90}
_IPSUM_MAX_CONFIDENCE = 95
# Feodo Tracker marks a C2 offline when it stops responding, but the list
# keeps only recent C2 servers, which were dedicated to a botnet. So an
# offline entry stays strong: with the feed's weight of 0.9, confidence 80
# scores 72, malicious at the default threshold of 70.
_FEODO_OFFLINE_CONFIDENCE = 80


class FeedEntry(NamedTuple):
    """One normalised feed entry: the value, its type and shared metadata.

    ``value`` is an address, ``network/prefix``, lower-case domain,
    normalised URL or lower-case hash. ``ip_key`` is the parsed form of an
    address or network, kept so that loading does not parse it twice. A
    NamedTuple, not a dataclass, because a million of these are built while
    a large feed loads.
    """

    value: str
    type: IndicatorType
    meta: EntryMeta = _NO_META
    ip_key: IpKey | None = None

    def with_meta(self, meta: EntryMeta) -> FeedEntry:
        return FeedEntry(self.value, self.type, meta, self.ip_key)

    @property
    def confidence(self) -> int | None:
        return self.meta.confidence

    @property
    def category(self) -> str | None:
        return self.meta.category

    @property
    def tags(self) -> tuple[str, ...]:
        return self.meta.tags

    @property
    def first_seen(self) -> datetime | None:
        return self.meta.first_seen

    @property
    def last_seen(self) -> datetime | None:
        return self.meta.last_seen


@dataclass
class ParseReport:
    """Counts of what a parse skipped: rejected lines (with examples) and dropped entries.

    ``dropped_count`` counts valid entries left out on purpose: non-public
    networks in a ``public_only`` feed.
    """

    rejected_count: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    dropped_count: int = 0

    def reject(self, where: str, text: str, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected_examples) < MAX_EXAMPLES:
            self.rejected_examples.append(f"{where}: {text[:120]!r}: {reason}")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """The entries of one feed file and what was rejected or dropped."""

    entries: tuple[FeedEntry, ...]
    rejected_count: int
    rejected_examples: tuple[str, ...]
    dropped_count: int = 0


Parser = Callable[[str, ParseReport], Iterator[FeedEntry]]


@dataclass(frozen=True, slots=True)
class FeedFormat:
    """A parser and a description of its format for error messages."""

    name: str
    parse: Parser
    description: str


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, stripped line) for lines that are not blank or comments."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and line[0] not in _COMMENTS:
            yield number, line


def _csv_fields(line: str) -> list[str]:
    """Split one CSV line; a line the csv module cannot read gives no fields."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return []


def _ip_entry(text: str, meta: EntryMeta = _NO_META) -> FeedEntry | None:
    try:
        key = parse_ip_key(text)
    except ValueError:
        return None
    if key.version == 4:
        # A plain IPv4 address that inet_pton accepted is already canonical.
        plain = "/" not in text and ":" not in text
        return FeedEntry(text if plain else key.text(), IndicatorType.IPV4, meta, key)
    return FeedEntry(key.text(), IndicatorType.IPV6, meta, key)


def parse_ip_list(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse one address or network per line; text after the first blank is ignored."""
    for number, line in _lines(text):
        entry = _ip_entry(line.split(None, 1)[0])
        if entry is None:
            report.reject(f"line {number}", line, "not an IP address or network")
            continue
        yield entry


def _ipsum_meta(count: int) -> EntryMeta:
    confidence = _IPSUM_CONFIDENCE.get(count, _IPSUM_MAX_CONFIDENCE)
    return EntryMeta(confidence=confidence, detail=f"listed by {count} of the IPsum blocklists")


def parse_ipsum(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse IPsum ``address<TAB>count`` lines; a missing count (levels files) is allowed."""
    metas: dict[int, EntryMeta] = {}
    for number, line in _lines(text):
        fields = line.split()
        meta = _NO_META
        if len(fields) > 1:
            count = int(fields[1]) if fields[1].isascii() and fields[1].isdigit() else 0
            if count < 1:
                report.reject(f"line {number}", line, "the list count is not a positive number")
                continue
            meta = metas.get(count) or metas.setdefault(count, _ipsum_meta(count))
        entry = _ip_entry(fields[0], meta)
        if entry is None:
            report.reject(f"line {number}", line, "not an IP address")
            continue
        yield entry


def _utc(text: Any) -> datetime | None:
    """Parse ``YYYY-MM-DD[ HH:MM:SS]`` as UTC; None for anything else."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


_FEODO_CSV_COLUMNS = ("first_seen", "ip_address", "port", "status", "last_online", "malware")


def _feodo_entry(record: dict[str, Any]) -> FeedEntry | None:
    """Build an entry from a Feodo record with the keys of the JSON format."""
    address = record.get("ip_address")
    entry = _ip_entry(address) if isinstance(address, str) else None
    if entry is None:
        return None
    malware = record.get("malware")
    malware_name = malware.strip() if isinstance(malware, str) else ""
    status = record.get("status") or "status unknown"
    meta = EntryMeta(
        confidence=None if status == "online" else _FEODO_OFFLINE_CONFIDENCE,
        category="botnet_c2",
        tags=(malware_name.lower(),) if malware_name else (),
        first_seen=_utc(record.get("first_seen")),
        last_seen=_utc(record.get("last_online")),
        detail=f"{malware_name or 'botnet'} C2 on port {record.get('port')}, {status}",
    )
    return entry.with_meta(meta)


def _parse_feodo_json(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    try:
        records = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        report.reject("document", text[:60], f"not valid JSON: {exc}")
        return
    if not isinstance(records, list):
        report.reject("document", text[:60], "expected a JSON array of C2 records")
        return
    for number, record in enumerate(records, 1):
        entry = _feodo_entry(record) if isinstance(record, dict) else None
        if entry is None:
            report.reject(f"item {number}", str(record), "ip_address is not an IP address")
            continue
        yield entry


def _parse_feodo_csv(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    for number, line in _lines(text):
        fields = _csv_fields(line)
        if fields and fields[0] == "first_seen_utc":
            continue  # the column header
        if len(fields) < len(_FEODO_CSV_COLUMNS):
            report.reject(f"line {number}", line, "expected 6 CSV columns")
            continue
        entry = _feodo_entry(dict(zip(_FEODO_CSV_COLUMNS, fields, strict=False)))
        if entry is None:
            report.reject(f"line {number}", line, "dst_ip is not an IP address")
            continue
        yield entry


def parse_feodo(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse a Feodo Tracker block list in its JSON array or its CSV format."""
    if text.lstrip()[:1] == "[":
        return _parse_feodo_json(text, report)
    return _parse_feodo_csv(text, report)


def _drop_json_line(line: str) -> tuple[str | None, str, str]:
    """Return (cidr, SBL id, reason) for one Spamhaus JSON line; cidr None to skip."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, "", "not valid JSON"
    if not isinstance(record, dict):
        return None, "", "not a JSON object"
    if record.get("type") == "metadata":
        return None, "", ""
    cidr = record.get("cidr")
    if not isinstance(cidr, str):
        return None, "", "has no cidr field"
    sblid = record.get("sblid")
    return cidr, sblid if isinstance(sblid, str) else "", ""


def parse_spamhaus_drop(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse Spamhaus DROP in the JSON-lines format or the legacy ``CIDR ; SBLnnn`` text."""
    metas: dict[str, EntryMeta] = {}
    for number, line in _lines(text):
        if line[0] == "{":
            cidr, sblid, reason = _drop_json_line(line)
            if cidr is None:
                if reason:
                    report.reject(f"line {number}", line, reason)
                continue
        else:
            cidr, _, rest = line.partition(";")
            sblid = rest.strip()
        entry = _ip_entry(cidr.strip())
        if entry is None:
            report.reject(f"line {number}", line, "not an IP network")
            continue
        meta = metas.get(sblid)
        if meta is None:
            meta = metas[sblid] = EntryMeta(detail=sblid, tags=(sblid.lower(),) if sblid else ())
        yield entry.with_meta(meta)


def parse_dshield_block(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse the DShield block list: start, end, prefix length, attacks, name, ... (tabs)."""
    for number, line in _lines(text):
        fields = line.split("\t")
        if fields[0] == "Start":
            continue  # the column header
        if len(fields) < 4 or not fields[2].strip().isdigit():
            report.reject(f"line {number}", line, "expected start, end, prefix length, attacks")
            continue
        entry = _ip_entry(f"{fields[0].strip()}/{fields[2].strip()}")
        if entry is None:
            report.reject(f"line {number}", line, "the start is not an IP address")
            continue
        attacks = fields[3].strip()
        detail = f"{attacks} targets reported scans from this network" if attacks.isdigit() else ""
        yield entry.with_meta(EntryMeta(detail=detail))


def parse_url_list(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse one URL per line (OpenPhish, URLhaus text exports)."""
    for number, line in _lines(text):
        url = normalise_url(line)
        if url is None or "://" not in line:
            report.reject(f"line {number}", line, "not a URL with a scheme and a host")
            continue
        yield FeedEntry(url, IndicatorType.URL)


def _urlhaus_row(fields: list[str]) -> FeedEntry | None:
    url = normalise_url(fields[2])
    if url is None or "://" not in fields[2]:
        return None
    fields = fields + [""] * (9 - len(fields))
    _, added, _, status, last_online, threat, tags, link = fields[:8]
    meta = EntryMeta(
        category="malware_distribution",
        tags=tuple(tag.strip().lower() for tag in tags.split(",") if tag.strip())[:8],
        first_seen=_utc(added),
        last_seen=_utc(last_online),
        detail=", ".join(part for part in (threat.replace("_", " "), status) if part),
        reference=link.strip() or None,
    )
    return FeedEntry(url, IndicatorType.URL, meta)


def parse_urlhaus_csv(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse URLhaus ``csv_online``/``csv_recent`` rows; a bare URL line is also accepted.

    Columns: id, dateadded, url, url_status, last_online, threat, tags,
    urlhaus_link, reporter.
    """
    for number, line in _lines(text):
        if line[0] != '"':
            url = normalise_url(line) if "://" in line else None
            entry = FeedEntry(url, IndicatorType.URL) if url else None
        else:
            fields = _csv_fields(line)
            entry = _urlhaus_row(fields) if len(fields) >= 4 else None
        if entry is None:
            report.reject(f"line {number}", line, "expected a URLhaus CSV row with a URL")
            continue
        yield entry


def parse_hosts(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse hosts-file lines (``127.0.0.1<TAB>host ...``) or one host name per line."""
    for number, line in _lines(text):
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1 and _ip_entry(fields[0]) is not None:
            fields = fields[1:]
        entries = [_host_entry(host) for host in fields]
        yield from (entry for entry in entries if entry is not None)
        invalid = [host for host, entry in zip(fields, entries, strict=True) if entry is None]
        if invalid:
            report.reject(f"line {number}", line, f"{invalid[0]!r} is not a public host name")


def _host_entry(text: str) -> FeedEntry | None:
    entry = _ip_entry(text)
    if entry is not None:
        return entry
    domain = normalise_domain(text)
    return FeedEntry(domain, IndicatorType.DOMAIN) if domain else None


def classify_value(text: str) -> FeedEntry | None:
    """Return the entry a free-form value stands for: IP, network, hash, URL or domain."""
    value = text.strip()
    entry = _ip_entry(value)
    if entry is not None:
        return entry
    hashed = normalise_hash(value)
    if hashed is not None:
        return FeedEntry(hashed[1], hashed[0])
    if "://" in value:
        url = normalise_url(value)
        return FeedEntry(url, IndicatorType.URL) if url else None
    domain = normalise_domain(value)
    return FeedEntry(domain, IndicatorType.DOMAIN) if domain else None


_MISP_ITEM_PARSERS: dict[str, Callable[[str], FeedEntry | None]] = {
    "cidr": _ip_entry,
    "hostname": _host_entry,
    "string": classify_value,
}


def parse_misp_warninglist(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse a MISP warning list (``list.json``) of type cidr, hostname or string.

    Substring and regex lists cannot be matched exactly, so their items are
    rejected.
    """
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        report.reject("document", text[:60], f"not valid JSON: {exc}")
        return
    items = document.get("list") if isinstance(document, dict) else None
    if not isinstance(items, list):
        report.reject("document", text[:60], "expected a MISP warning list with a 'list' array")
        return
    list_type = str(document.get("type", ""))
    item_parser = _MISP_ITEM_PARSERS.get(list_type)
    meta = EntryMeta(detail=f"in the MISP warning list {str(document.get('name', '?'))!r}")
    for number, item in enumerate(items, 1):
        entry = item_parser(item) if item_parser and isinstance(item, str) else None
        if entry is None:
            reason = (
                f"MISP lists of type {list_type!r} are not supported"
                if item_parser is None
                else f"not a valid {list_type} item"
            )
            report.reject(f"item {number}", str(item), reason)
            continue
        yield entry.with_meta(meta)


def parse_hash_list(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse one MD5, SHA-1, SHA-256 or SHA-512 hash per line (MalwareBazaar exports)."""
    for number, line in _lines(text):
        hashed = normalise_hash(line.split(None, 1)[0])
        if hashed is None:
            report.reject(f"line {number}", line, "not an MD5, SHA-1, SHA-256 or SHA-512 hash")
            continue
        yield FeedEntry(hashed[1], hashed[0])


# ThreatFox threat types (https://threatfox.abuse.ch/api/#types) as iocscope
# categories and as words for the summary.
_THREATFOX_THREATS = {
    "botnet_cc": ("botnet_c2", "botnet C2"),
    "payload_delivery": ("malware_distribution", "payload delivery"),
    "payload": ("malware", "payload"),
}
_THREATFOX_CSV_COLUMNS = (
    "first_seen_utc",
    "ioc_id",
    "ioc_value",
    "ioc_type",
    "threat_type",
    "fk_malware",
    "malware_alias",
    "malware_printable",
    "last_seen_utc",
    "confidence_level",
    "reference",
    "tags",
    "anonymous",
    "reporter",
)
_MAX_FEED_TAGS = 8


def _strip_port(text: str) -> str:
    """Return the address of ``address:port``, ``[v6]:port`` or a bare address."""
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if _ip_entry(text) is not None:
        return text
    return text.rpartition(":")[0]


def _threatfox_value(ioc_type: str, value: str) -> FeedEntry | None:
    """Return the entry of one ThreatFox IOC by its ``ioc_type``; None when invalid."""
    if ioc_type == "ip:port":
        return _ip_entry(_strip_port(value))
    if ioc_type == "domain":
        domain = normalise_domain(value)
        return FeedEntry(domain, IndicatorType.DOMAIN) if domain else None
    if ioc_type == "url":
        url = normalise_url(value) if "://" in value else None
        return FeedEntry(url, IndicatorType.URL) if url else None
    if ioc_type.endswith("_hash"):
        hashed = normalise_hash(value)
        return FeedEntry(hashed[1], hashed[0]) if hashed else None
    return None


def _threatfox_time(value: Any) -> datetime | None:
    # ThreatFox writes "2024-05-01 10:00:00 UTC"; the suffix is not ISO 8601.
    return _utc(value.removesuffix(" UTC")) if isinstance(value, str) else None


def _threatfox_confidence(value: Any) -> int | None:
    text = str(value).strip() if isinstance(value, int | str) else ""
    return min(100, int(text)) if text.isascii() and text.isdigit() else None


def _threatfox_tags(record: dict[str, Any]) -> tuple[str, ...]:
    raw = record.get("tags")
    tags: list[Any] = []
    if isinstance(raw, str):
        tags = raw.split(",")
    elif isinstance(raw, list):
        tags = raw
    names = [record.get("malware_printable"), *tags]
    cleaned = (str(name).strip().lower() for name in names if isinstance(name, str))
    return tuple(dict.fromkeys(tag for tag in cleaned if tag and tag != "none"))[:_MAX_FEED_TAGS]


def _threatfox_entry(record: dict[str, Any], ioc_id: str = "") -> FeedEntry | None:
    """Build an entry from one ThreatFox record (export or API keys)."""
    value = record.get("ioc_value", record.get("ioc"))
    ioc_type = record.get("ioc_type")
    if not isinstance(value, str) or not isinstance(ioc_type, str):
        return None
    entry = _threatfox_value(ioc_type.strip().lower(), value.strip())
    if entry is None:
        return None
    category, threat = _THREATFOX_THREATS.get(str(record.get("threat_type")), ("malware", "IOC"))
    malware = record.get("malware_printable")
    malware_name = malware.strip() if isinstance(malware, str) and malware.strip() else "malware"
    port = value.rpartition(":")[2] if ioc_type == "ip:port" else ""
    ioc_id = ioc_id or str(record.get("ioc_id", record.get("id", ""))).strip()
    meta = EntryMeta(
        confidence=_threatfox_confidence(record.get("confidence_level")),
        category=category,
        tags=_threatfox_tags(record),
        first_seen=_threatfox_time(record.get("first_seen_utc", record.get("first_seen"))),
        last_seen=_threatfox_time(record.get("last_seen_utc", record.get("last_seen"))),
        detail=f"{malware_name} {threat}" + (f" on port {port}" if port.isdigit() else ""),
        reference=f"https://threatfox.abuse.ch/ioc/{ioc_id}/" if ioc_id.isdigit() else None,
    )
    return entry.with_meta(meta)


def _threatfox_records(document: Any) -> Iterator[tuple[str, Any]]:
    """Yield (IOC id, record) from the export (id -> [records]), an API response or a list."""
    if isinstance(document, dict) and isinstance(document.get("data"), list):
        document = document["data"]
    if isinstance(document, list):
        yield from (("", record) for record in document)
        return
    for ioc_id, records in document.items():
        for record in records if isinstance(records, list) else [records]:
            yield str(ioc_id), record


def _parse_threatfox_json(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        report.reject("document", text[:60], f"not valid JSON: {exc}")
        return
    if not isinstance(document, dict | list):
        report.reject("document", text[:60], "expected a JSON object of IOC records")
        return
    for number, (ioc_id, record) in enumerate(_threatfox_records(document), 1):
        entry = _threatfox_entry(record, ioc_id) if isinstance(record, dict) else None
        if entry is None:
            report.reject(f"record {number}", str(record), "not an IOC of a known ioc_type")
            continue
        yield entry


def _parse_threatfox_csv(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    for number, line in _lines(text):
        try:
            fields = next(csv.reader([line], skipinitialspace=True), [])
        except csv.Error:
            fields = []
        if len(fields) < 5:
            report.reject(f"line {number}", line, "expected a ThreatFox CSV row of 14 columns")
            continue
        record = dict(zip(_THREATFOX_CSV_COLUMNS, fields, strict=False))
        entry = _threatfox_entry(record)
        if entry is None:
            report.reject(f"line {number}", line, "not an IOC of a known ioc_type")
            continue
        yield entry


def parse_threatfox(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse a ThreatFox export, JSON or CSV: ip:port, domain, url and hash IOCs.

    The port of an ``ip:port`` IOC is dropped (iocscope matches addresses)
    and kept in the summary. ``confidence_level`` becomes the entry's
    confidence, ``malware_printable`` and ``tags`` its tags.
    """
    if text.lstrip()[:1] in ("{", "["):
        return _parse_threatfox_json(text, report)
    return _parse_threatfox_csv(text, report)


# One published prefix: where it sits in the document, the raw value and a
# detail for the summary (service and region).
_Prefix = tuple[str, Any, str]


def _load_object(text: str, report: ParseReport, expected: str) -> dict[str, Any] | None:
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        report.reject("document", text[:60], f"not valid JSON: {exc}")
        return None
    if not isinstance(document, dict):
        report.reject("document", text[:60], f"expected {expected}")
        return None
    return document


def _items(document: dict[str, Any], key: str) -> list[Any]:
    items = document.get(key)
    return items if isinstance(items, list) else []


def _joined(*parts: Any) -> str:
    return " in ".join(part for part in parts if isinstance(part, str) and part)


def _aws_prefixes(document: dict[str, Any]) -> Iterator[_Prefix]:
    for key, field_name in (("prefixes", "ip_prefix"), ("ipv6_prefixes", "ipv6_prefix")):
        for number, item in enumerate(_items(document, key), 1):
            record = item if isinstance(item, dict) else {}
            detail = _joined(record.get("service"), record.get("region"))
            yield f"{key}[{number}]", record.get(field_name, item), detail


def _google_prefixes(document: dict[str, Any]) -> Iterator[_Prefix]:
    for number, item in enumerate(_items(document, "prefixes"), 1):
        record = item if isinstance(item, dict) else {}
        value = record.get("ipv4Prefix", record.get("ipv6Prefix", item))
        yield f"prefixes[{number}]", value, _joined(record.get("service"), record.get("scope"))


def _fastly_prefixes(document: dict[str, Any]) -> Iterator[_Prefix]:
    for key in ("addresses", "ipv6_addresses"):
        for number, item in enumerate(_items(document, key), 1):
            yield f"{key}[{number}]", item, ""


def _oci_prefixes(document: dict[str, Any]) -> Iterator[_Prefix]:
    for region_number, raw_region in enumerate(_items(document, "regions"), 1):
        region = raw_region if isinstance(raw_region, dict) else {}
        for number, item in enumerate(_items(region, "cidrs"), 1):
            record = item if isinstance(item, dict) else {}
            tags = record.get("tags")
            services = "/".join(map(str, tags)) if isinstance(tags, list) else ""
            detail = _joined(services, region.get("region"))
            yield f"regions[{region_number}].cidrs[{number}]", record.get("cidr", item), detail


def _parse_prefixes(
    text: str,
    report: ParseReport,
    walk: Callable[[dict[str, Any]], Iterator[_Prefix]],
    expected: str,
) -> Iterator[FeedEntry]:
    """Parse a provider's JSON list of address ranges with the document walker ``walk``."""
    document = _load_object(text, report, expected)
    if document is None:
        return
    metas: dict[str, EntryMeta] = {}
    found = False
    for where, value, detail in walk(document):
        found = True
        entry = _ip_entry(value.strip()) if isinstance(value, str) else None
        if entry is None:
            report.reject(where, str(value), "not an IP network")
            continue
        meta = metas.get(detail) or metas.setdefault(detail, EntryMeta(detail=detail))
        yield entry.with_meta(meta)
    if not found:
        report.reject("document", text[:60], f"expected {expected}")


def parse_aws_ip_ranges(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse AWS ``ip-ranges.json``: ``prefixes[].ip_prefix``, ``ipv6_prefixes[].ipv6_prefix``."""
    expected = "an AWS ip-ranges.json document with 'prefixes'"
    return _parse_prefixes(text, report, _aws_prefixes, expected)


def parse_google_ip_ranges(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse Google ``cloud.json`` or ``goog.json``: ``prefixes[].ipv4Prefix/ipv6Prefix``."""
    expected = "a Google cloud.json or goog.json document with 'prefixes'"
    return _parse_prefixes(text, report, _google_prefixes, expected)


def parse_fastly_ip_list(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse Fastly's ``public-ip-list``: the ``addresses`` and ``ipv6_addresses`` arrays."""
    expected = "a Fastly public-ip-list document with 'addresses'"
    return _parse_prefixes(text, report, _fastly_prefixes, expected)


def parse_oci_ip_ranges(text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Parse Oracle Cloud ``public_ip_ranges.json``: ``regions[].cidrs[].cidr``."""
    expected = "an Oracle Cloud public_ip_ranges.json document with 'regions'"
    return _parse_prefixes(text, report, _oci_prefixes, expected)


FORMATS: dict[str, FeedFormat] = {
    fmt.name: fmt
    for fmt in (
        FeedFormat("ip_list", parse_ip_list, "one IP address or CIDR network per line"),
        FeedFormat("ipsum", parse_ipsum, "IPsum lines 'address<TAB>number of lists'"),
        FeedFormat("feodo", parse_feodo, "the Feodo Tracker block list as JSON or CSV"),
        FeedFormat(
            "spamhaus_drop",
            parse_spamhaus_drop,
            'Spamhaus DROP JSON lines {"cidr": ...} or "CIDR ; SBLnnn" text',
        ),
        FeedFormat("dshield_block", parse_dshield_block, "the tab-separated DShield block list"),
        FeedFormat("url_list", parse_url_list, "one URL per line"),
        FeedFormat("urlhaus_csv", parse_urlhaus_csv, "URLhaus CSV rows (csv_online)"),
        FeedFormat("hosts", parse_hosts, "hosts-file lines '127.0.0.1 host' or one host per line"),
        FeedFormat(
            "misp_warninglist",
            parse_misp_warninglist,
            "a MISP warning list JSON document with 'type' and 'list'",
        ),
        FeedFormat("hash_list", parse_hash_list, "one MD5, SHA-1, SHA-256 or SHA-512 per line"),
        FeedFormat("threatfox", parse_threatfox, "a ThreatFox export as JSON or CSV"),
        FeedFormat("aws_ip_ranges", parse_aws_ip_ranges, "AWS ip-ranges.json"),
        FeedFormat("google_ip_ranges", parse_google_ip_ranges, "Google cloud.json or goog.json"),
        FeedFormat("fastly_ip_list", parse_fastly_ip_list, "Fastly public-ip-list JSON"),
        FeedFormat("oci_ip_ranges", parse_oci_ip_ranges, "Oracle Cloud public_ip_ranges.json"),
    )
}


def feed_format(name: str) -> FeedFormat:
    """Return the format called ``name``; raises KeyError naming the known formats."""
    try:
        return FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise KeyError(f"unknown feed format {name!r}: expected one of {known}") from None


def iter_feed(spec: FeedSpec | str, text: str, report: ParseReport) -> Iterator[FeedEntry]:
    """Stream the entries of a feed file, counting rejects and drops in ``report``.

    Given a ``FeedSpec``, entries of a type the feed does not declare are
    rejected, and a ``public_only`` feed drops entries that overlap
    non-public address space.
    """
    fmt = feed_format(spec if isinstance(spec, str) else spec.format)
    entries = fmt.parse(text.removeprefix("\ufeff"), report)
    if isinstance(spec, str):
        yield from entries
        return
    accepted = set(spec.types)
    if IndicatorType.URL in accepted:
        # A URL's host may be an address, so host feeds keep address entries.
        accepted |= {IndicatorType.IPV4, IndicatorType.IPV6}
    for entry in entries:
        if entry.type not in accepted:
            report.reject("entry", entry.value, f"type {entry.type} is not one of {_names(spec)}")
        elif spec.public_only and entry.ip_key is not None and not is_public(entry.ip_key):
            report.dropped_count += 1
        else:
            yield entry


def _names(spec: FeedSpec) -> str:
    return "/".join(sorted(str(kind) for kind in spec.types))


def parse_feed(spec: FeedSpec | str, text: str) -> ParsedFeed:
    """Parse a whole feed file given its spec or format name."""
    report = ParseReport()
    entries = tuple(iter_feed(spec, text, report))
    return ParsedFeed(
        entries=entries,
        rejected_count=report.rejected_count,
        rejected_examples=tuple(report.rejected_examples),
        dropped_count=report.dropped_count,
    )


def _ranges(version: int, networks: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    bits = 32 if version == 4 else 128
    result = []
    for text in networks:
        key = parse_ip_key(text)
        result.append((key.value, key.value | ((1 << (bits - key.prefixlen)) - 1)))
    return tuple(result)


# Special-purpose ranges (IANA IPv4/IPv6 special-purpose registries, RFC 6890
# and later) plus multicast and the reserved 240.0.0.0/4: none of it is
# public address space, so a public_only feed drops entries overlapping it.
_NON_PUBLIC = {
    4: _ranges(
        4,
        (
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/4",
            "240.0.0.0/4",
        ),
    ),
    6: _ranges(
        6,
        (
            "::/3",  # unspecified, loopback, IPv4-mapped and unassigned space
            "2001::/23",
            "2001:db8::/32",
            "3fff::/20",
            "4000::/2",
            "8000::/1",  # everything above 2000::/3 except global unicast
        ),
    ),
}


def is_public(key: IpKey) -> bool:
    """Return whether an address or network lies wholly in public address space."""
    bits = 32 if key.version == 4 else 128
    last = key.value | ((1 << (bits - key.prefixlen)) - 1)
    return all(last < start or key.value > end for start, end in _NON_PUBLIC[key.version])
