"""``iocscope wazuh cdb``: compile synced feed indicators into Wazuh CDB lists.

Wazuh matches CDB lists inside analysisd at line rate, with no API call, so
the blocklist feeds iocscope already syncs can flag matching events before
(and without) any enrichment. The export writes four lists under
``etc/lists``: ``iocscope-ip``, ``iocscope-domain``, ``iocscope-hash`` and
``iocscope-url``, one ``key:value`` line a key, the value naming the feeds
that list the key. A rules file uses them and ``ossec.conf`` declares them.

Wazuh's list syntax (documentation "Using CDB lists": the octet prefixes
since 3.x, the quoting of keys with colons as written for 4.3 and later)
sets the limits this module works within:

- IPv4 keys are exact addresses or octet prefixes ending in a dot
  (``10.``, ``10.1.``, ``10.1.2.``); ``address_match_key`` tries the address,
  then each shorter prefix. There is no CIDR syntax, so a network whose
  prefix length is not a multiple of 8 becomes the octet keys that cover it
  exactly: a /22 four /24 prefixes, a /30 its four addresses. A network that
  would need more than ``max_keys_per_network`` keys is left out and counted.
- A key that contains ``:`` must be quoted, as IPv6 addresses and URLs are.
  An IPv6 network cannot be written as a key at all: such networks are
  counted and reported, never widened.
- A key cannot contain a double quote or a line break; such keys are
  skipped and counted.

The synced files are read with the feed parsers (``iter_feed``) from
``<data_dir>/feeds/<name>/``, because the in-memory ``FeedStore`` indexes
do not expose their entries. Allowlist feeds are never exported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from iocscope.errors import ConfigError
from iocscope.indicators.model import IndicatorType
from iocscope.sources.feeds.catalogue import FEEDS, FeedSpec
from iocscope.sources.feeds.index import IpKey, parse_ip_key
from iocscope.sources.feeds.parsers import FeedEntry, ParseReport, iter_feed
from iocscope.sources.feeds.store import data_files, decode_feed, feed_dir
from iocscope.wazuh import ossec_conf
from iocscope.wazuh.install import (
    CDB_RULES_FILE,
    LIST_PREFIX,
    LISTS_DIR,
    Clock,
    InstallResult,
    Ownership,
    Placer,
    check_wazuh_dir,
    edit_ossec_conf,
    resolve_ownership,
    utcnow,
)

logger = logging.getLogger(__name__)

LIST_IP = f"{LIST_PREFIX}ip"
LIST_DOMAIN = f"{LIST_PREFIX}domain"
LIST_HASH = f"{LIST_PREFIX}hash"
LIST_URL = f"{LIST_PREFIX}url"
LIST_NAMES = (LIST_IP, LIST_DOMAIN, LIST_HASH, LIST_URL)

LIST_MODE = 0o660
DEFAULT_MAX_KEYS_PER_NETWORK = 1024
DEFAULT_CDB_BASE_ID = 100900
CUSTOM_ID_FIRST = 100000
CUSTOM_ID_LAST = 119999

# Groups whose alerts carry a decoded srcip or dstip worth checking: login
# failures, web and IDS traffic, firewall logs. if_group is matched against
# the parent rule's groups.
IP_PARENT_GROUPS = (
    "authentication_failed|authentication_failures|invalid_login|web|accesslog|attack|"
    "attacks|recon|ids|firewall"
)
# Wazuh's FIM rules 550 (checksum changed) and 554 (file added) carry the
# new file's md5, sha1 and sha256 as the fields of the same name, as in
# Wazuh's own malware-hash list rules.
FIM_PARENT_SIDS = "550, 554"
# NOTE: match_key compares text exactly and the domain keys are lower-case,
# so a query name that Sysmon logs with capitals does not match.
DNS_PARENT_GROUP = "sysmon_event_22"
URL_PARENT_GROUPS = "web|squid"


@dataclass(frozen=True, slots=True)
class CdbRule:
    """One CDB rule: its ID offset, level, parent condition, list lookup and description."""

    offset: int
    level: int
    parent: str
    field: str
    lookup: str
    list_name: str
    description: str


CDB_RULES = (
    CdbRule(
        offset=0,
        level=10,
        parent=f"<if_group>{IP_PARENT_GROUPS}</if_group>",
        field="srcip",
        lookup="address_match_key",
        list_name=LIST_IP,
        description="source IP $(srcip) is on a threat feed blocklist",
    ),
    CdbRule(
        offset=1,
        level=10,
        parent=f"<if_group>{IP_PARENT_GROUPS}</if_group>",
        field="dstip",
        lookup="address_match_key",
        list_name=LIST_IP,
        description="destination IP $(dstip) is on a threat feed blocklist",
    ),
    CdbRule(
        offset=2,
        level=12,
        parent=f"<if_sid>{FIM_PARENT_SIDS}</if_sid>",
        field="md5",
        lookup="match_key",
        list_name=LIST_HASH,
        description="file $(file) has an MD5 listed by a threat feed",
    ),
    CdbRule(
        offset=3,
        level=12,
        parent=f"<if_sid>{FIM_PARENT_SIDS}</if_sid>",
        field="sha1",
        lookup="match_key",
        list_name=LIST_HASH,
        description="file $(file) has a SHA-1 listed by a threat feed",
    ),
    CdbRule(
        offset=4,
        level=12,
        parent=f"<if_sid>{FIM_PARENT_SIDS}</if_sid>",
        field="sha256",
        lookup="match_key",
        list_name=LIST_HASH,
        description="file $(file) has a SHA-256 listed by a threat feed",
    ),
    CdbRule(
        offset=5,
        level=10,
        parent=f"<if_group>{DNS_PARENT_GROUP}</if_group>",
        field="win.eventdata.queryName",
        lookup="match_key",
        list_name=LIST_DOMAIN,
        description="DNS query for $(win.eventdata.queryName), a listed domain",
    ),
    CdbRule(
        offset=6,
        level=10,
        parent=f"<if_group>{URL_PARENT_GROUPS}</if_group>",
        field="url",
        lookup="match_key",
        list_name=LIST_URL,
        description="request for $(url), a URL listed by a threat feed",
    ),
)
CDB_RULE_COUNT = len(CDB_RULES)


@dataclass
class CdbReport:
    """Counts of one export, for the operator.

    ``networks_expanded`` counts the IPv4 networks off an octet boundary
    that became several keys, ``expansion_keys`` in total.
    ``networks_over_bound`` counts the networks left out because they needed
    more keys than the bound. ``ipv6_networks_skipped`` counts IPv6
    networks, which no key can express, and ``unsafe_keys_skipped`` the
    values with a double quote or a control character.
    """

    keys: dict[str, int] = field(default_factory=dict)
    entries_read: dict[str, int] = field(default_factory=dict)
    networks_expanded: int = 0
    expansion_keys: int = 0
    networks_over_bound: int = 0
    ipv6_networks_skipped: int = 0
    unsafe_keys_skipped: int = 0
    unreadable_files: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Return the report as lines of text."""
        lines = [f"{name}: {self.keys.get(name, 0)} keys" for name in LIST_NAMES]
        lines += [
            f"read {count} entries from feed {feed}" for feed, count in self.entries_read.items()
        ]
        lines.append(
            f"{self.networks_expanded} IPv4 networks off an octet boundary expanded "
            f"into {self.expansion_keys} keys"
        )
        lines.append(f"{self.networks_over_bound} IPv4 networks skipped: over the key bound")
        lines.append(
            f"{self.ipv6_networks_skipped} IPv6 networks skipped: CDB keys cannot express them"
        )
        lines.append(f"{self.unsafe_keys_skipped} values skipped: quote or control character")
        lines += [f"unreadable feed file: {path}" for path in self.unreadable_files]
        return lines


def ipv4_keys(key: IpKey) -> list[str]:
    """Return the octet keys that cover an IPv4 address or network exactly.

    The prefix length is rounded up to the next multiple of 8 (at least 8),
    and the network is split into the networks of that length. So a /22
    gives four ``a.b.c.`` prefixes, a /30 four exact addresses, a /8 one ``a.``.
    """
    boundary = max(8, -(-key.prefixlen // 8) * 8)
    octets = boundary // 8
    first = key.value >> (32 - boundary)
    keys = []
    for number in range(first, first + (1 << (boundary - key.prefixlen))):
        parts = [str((number >> (8 * (octets - 1 - index))) & 0xFF) for index in range(octets)]
        text = ".".join(parts)
        keys.append(text if octets == 4 else f"{text}.")
    return keys


def ipv4_key_count(key: IpKey) -> int:
    """Return how many keys ``ipv4_keys`` would produce, without building them."""
    boundary = max(8, -(-key.prefixlen // 8) * 8)
    return 1 << (boundary - key.prefixlen)


def format_key(key: str) -> str | None:
    """Return ``key`` as written in a list file, quoted when it contains ``:``; None if unsafe."""
    if '"' in key or not key.isprintable():
        return None
    return f'"{key}"' if ":" in key else key


class CdbBuilder:
    """Collects feed entries into the four lists, merging the feed names of equal keys."""

    def __init__(self, max_keys_per_network: int = DEFAULT_MAX_KEYS_PER_NETWORK) -> None:
        if max_keys_per_network < 1:
            raise ConfigError(
                f"invalid key bound {max_keys_per_network}: expected at least 1 key per network"
            )
        self.max_keys_per_network = max_keys_per_network
        self.lists: dict[str, dict[str, set[str]]] = {name: {} for name in LIST_NAMES}
        self.report = CdbReport()

    def _put(self, list_name: str, key: str, feed: str) -> None:
        formatted = format_key(key)
        if formatted is None:
            self.report.unsafe_keys_skipped += 1
            return
        self.lists[list_name].setdefault(formatted, set()).add(feed)

    def add(self, feed: str, entry: FeedEntry) -> None:
        """Add one normalised feed entry from the feed called ``feed``."""
        self.report.entries_read[feed] = self.report.entries_read.get(feed, 0) + 1
        kind = entry.type
        if kind.is_ip:
            self._add_ip(feed, entry.value)
        elif kind is IndicatorType.DOMAIN:
            self._put(LIST_DOMAIN, entry.value, feed)
        elif kind is IndicatorType.URL:
            self._put(LIST_URL, entry.value, feed)
        elif kind.is_hash:
            self._put(LIST_HASH, entry.value.lower(), feed)

    def _add_ip(self, feed: str, value: str) -> None:
        try:
            key = parse_ip_key(value)
        except ValueError:
            self.report.unsafe_keys_skipped += 1
            return
        if key.version == 6:
            if key.is_network:
                self.report.ipv6_networks_skipped += 1
            else:
                self._put(LIST_IP, key.text(), feed)
            return
        count = ipv4_key_count(key)
        if count > self.max_keys_per_network:
            self.report.networks_over_bound += 1
            logger.info("CDB export skips %s of %s: it needs %d keys", key.text(), feed, count)
            return
        if count > 1:
            self.report.networks_expanded += 1
            self.report.expansion_keys += count
        for text in ipv4_keys(key):
            self._put(LIST_IP, text, feed)

    def render(self) -> dict[str, str]:
        """Return the text of each non-empty list, keys sorted, and fill the key counts."""
        texts: dict[str, str] = {}
        for name, keys in self.lists.items():
            self.report.keys[name] = len(keys)
            if keys:
                lines = (
                    f"{key}:{','.join(sorted(feeds))}\n" for key, feeds in sorted(keys.items())
                )
                texts[name] = "".join(lines)
        return texts


def iter_feed_entries(
    data_dir: Path, report: CdbReport, specs: Iterable[FeedSpec] = FEEDS
) -> Iterator[tuple[str, FeedEntry]]:
    """Yield (feed name, entry) for every blocklist feed synced under ``data_dir``.

    Allowlist feeds (``benign_only``) are skipped; an unreadable file is
    logged and named in ``report`` instead of stopping the export.
    """
    for spec in specs:
        if spec.benign_only:
            continue
        for path in data_files(feed_dir(data_dir, spec.name)):
            try:
                text = decode_feed(path.read_bytes())
            except OSError as exc:
                logger.warning("cannot read feed file %s: %s", path, exc.strerror)
                report.unreadable_files.append(str(path))
                continue
            for entry in iter_feed(spec, text, ParseReport()):
                yield spec.name, entry


def check_cdb_base_id(base_id: int) -> None:
    """Raise ConfigError unless every CDB rule ID is within Wazuh's custom range."""
    last = base_id + CDB_RULE_COUNT - 1
    if base_id < CUSTOM_ID_FIRST or last > CUSTOM_ID_LAST:
        raise ConfigError(
            f"invalid CDB rule base ID {base_id}: the CDB rules need {CDB_RULE_COUNT} IDs "
            f"({base_id}-{last}) within Wazuh's custom range {CUSTOM_ID_FIRST}-{CUSTOM_ID_LAST}"
        )


def list_path(name: str) -> str:
    """Return the path of a list as rules and ossec.conf name it (relative to the Wazuh dir)."""
    return f"{LISTS_DIR.as_posix()}/{name}"


def render_cdb_rules(base_id: int, lists: Iterable[str]) -> str:
    """Return the rules file for the lists in ``lists``; rule IDs stay fixed per lookup."""
    check_cdb_base_id(base_id)
    present = set(lists)
    header = (
        "<!--\n"
        "  iocscope CDB list rules, generated by `iocscope wazuh cdb`.\n"
        f"  Rule IDs {base_id}-{base_id + CDB_RULE_COUNT - 1}, rewritten by every export.\n"
        "-->\n"
    )
    rules = [_render_rule(base_id, rule) for rule in CDB_RULES if rule.list_name in present]
    body = "\n".join(rules)
    return f'{header}<group name="iocscope,iocscope_cdb,">\n\n{body}\n</group>\n'


def _render_rule(base_id: int, rule: CdbRule) -> str:
    group = rule.list_name.replace("-", "_")
    return "\n".join(
        [
            f'  <rule id="{base_id + rule.offset}" level="{rule.level}">',
            f"    {rule.parent}",
            f'    <list field="{rule.field}" lookup="{rule.lookup}">'
            f"{list_path(rule.list_name)}</list>",
            f"    <description>iocscope CDB: {rule.description}.</description>",
            f"    <group>{group},</group>",
            "  </rule>\n",
        ]
    )


@dataclass(frozen=True, slots=True)
class CdbExport:
    """The rendered lists (name to text), the rules file text and the report."""

    lists: Mapping[str, str]
    rules: str
    report: CdbReport


def build_export(
    data_dir: Path,
    *,
    base_id: int = DEFAULT_CDB_BASE_ID,
    max_keys_per_network: int = DEFAULT_MAX_KEYS_PER_NETWORK,
    specs: Iterable[FeedSpec] = FEEDS,
) -> CdbExport:
    """Read the synced blocklist feeds and render the lists and their rules."""
    check_cdb_base_id(base_id)
    builder = CdbBuilder(max_keys_per_network)
    for feed, entry in iter_feed_entries(data_dir, builder.report, specs):
        builder.add(feed, entry)
    lists = builder.render()
    return CdbExport(lists, render_cdb_rules(base_id, lists), builder.report)


def rules_file_path(wazuh_dir: Path) -> Path:
    """Return where the CDB rules file goes in a Wazuh directory."""
    return wazuh_dir / CDB_RULES_FILE


def write_export(
    export: CdbExport,
    *,
    wazuh_dir: Path,
    out_dir: Path | None = None,
    group: str | None = None,
    dry_run: bool = False,
    clock: Clock = utcnow,
) -> InstallResult:
    """Write the lists and rules into the Wazuh directory, or into ``out_dir``.

    Into the Wazuh directory, the lists go to ``etc/lists`` and the rules to
    ``etc/rules/iocscope_cdb_rules.xml``, and ``ossec.conf`` declares exactly
    the lists written, with a backup when it changes. A list left empty by
    this export is removed together with its compiled ``.cdb`` file, so no
    rule points at a stale list. With ``out_dir`` every file goes there and
    ``ossec.conf`` is not touched, for copying to another manager.
    """
    if out_dir is not None:
        ownership = resolve_ownership(group) if group else Ownership("wazuh", None)
        placer = Placer(ownership, dry_run=dry_run)
        _write_files(placer, export, out_dir, out_dir / CDB_RULES_FILE.name)
        placer.result.chown_commands.clear()
        return placer.result
    conf = check_wazuh_dir(wazuh_dir)
    placer = Placer(resolve_ownership(group), dry_run=dry_run)
    _write_files(placer, export, wazuh_dir / LISTS_DIR, wazuh_dir / CDB_RULES_FILE)
    # Sorted like install.existing_list_paths, so install and cdb agree on the block.
    declared = sorted(list_path(name) for name in export.lists)
    edit_ossec_conf(placer, conf, lambda text: ossec_conf.set_lists_block(text, declared), clock)
    if placer.result.changed:
        placer.result.notes.append(
            "restart the manager so analysisd compiles and loads the lists: "
            "systemctl restart wazuh-manager"
        )
    return placer.result


def _write_files(placer: Placer, export: CdbExport, lists_dir: Path, rules_path: Path) -> None:
    for name in LIST_NAMES:
        path = lists_dir / name
        text = export.lists.get(name)
        if text is None:
            placer.remove(path)
            placer.remove(path.with_name(f"{name}.cdb"))
        else:
            placer.write(path, text.encode("utf-8"), LIST_MODE)
    if export.lists:
        placer.write(rules_path, export.rules.encode("utf-8"), LIST_MODE)
    else:
        placer.remove(rules_path)
