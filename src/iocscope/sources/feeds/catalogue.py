"""The catalogue of bulk feeds iocscope can sync and match.

Each feed is one frozen ``FeedSpec``: where to download it, which parser
reads it, what its hits mean (a flag or, for allowlists, a benign hint), how
strong a flag is, and the terms that come with the data. ``FEEDS`` is the
explicit list the registry, the sync command and the store iterate over.

Licence notes summarise the provider's published terms as read when the
entry was written. They are a pointer, not legal advice: read the linked
terms before commercial use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from iocscope.indicators.model import HASH_TYPES, IndicatorType

IP_TYPES = frozenset({IndicatorType.IPV4, IndicatorType.IPV6})
URL_TYPES = frozenset({IndicatorType.URL})
HOST_TYPES = frozenset({IndicatorType.DOMAIN, IndicatorType.URL})

MISP_RAW = "https://raw.githubusercontent.com/MISP/misp-warninglists/main/lists"
MISP_REFERENCE = "https://github.com/MISP/misp-warninglists"
MISP_LICENCE = "MISP warning lists: CC0 1.0 (public domain dedication)."
ABUSE_CH_LICENCE = (
    "abuse.ch terms of use: free to use with attribution; commercial use may require "
    "an agreement with abuse.ch, so read https://abuse.ch/terms-of-use/ first."
)


@dataclass(frozen=True, slots=True)
class FeedFile:
    """One downloadable file of a feed: its name on disk and its default address."""

    filename: str
    url: str


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed's files, parser, indicator types, hit meaning and terms.

    ``weight`` is the default strength of a flag in the score (0.0-1.0) and
    ``confidence`` the 0-100 value used for entries that carry none of their
    own. ``benign_only`` marks an allowlist: its hits are benign hints and
    never flags. ``public_only`` drops entries that overlap private, reserved
    or other non-public address space (aggregates such as FireHOL level1
    include bogon lists). ``match_subdomains`` lets a listed domain cover its
    subdomains. ``files`` lists the files the feed is made of; most feeds have
    one.
    """

    name: str
    title: str
    format: str
    types: frozenset[IndicatorType]
    files: tuple[FeedFile, ...]
    weight: float
    category: str
    licence: str
    reference: str
    confidence: int = 70
    commercial_use_restricted: bool = False
    benign_only: bool = False
    public_only: bool = False
    match_subdomains: bool = False
    sync_interval: timedelta = timedelta(hours=12)

    @property
    def url(self) -> str:
        """The default download address of the feed's first (usually only) file."""
        return self.files[0].url


def _misp(lists: tuple[str, ...]) -> tuple[FeedFile, ...]:
    return tuple(FeedFile(f"{name}.json", f"{MISP_RAW}/{name}/list.json") for name in lists)


FEEDS: tuple[FeedSpec, ...] = (
    FeedSpec(
        name="ipsum",
        title="IPsum",
        format="ipsum",
        types=IP_TYPES,
        files=(
            FeedFile(
                "ipsum.txt", "https://raw.githubusercontent.com/stamparm/ipsum/master/ipsum.txt"
            ),
        ),
        # Strong: each count is an independent blocklist, and the confidence
        # (from the count) keeps one or two lists well below malicious.
        weight=0.9,
        category="malicious_activity",
        confidence=20,
        licence="The Unlicense; IPsum aggregates 30+ public blocklists that keep their own terms.",
        reference="https://github.com/stamparm/ipsum",
        sync_interval=timedelta(hours=24),
    ),
    FeedSpec(
        name="feodo",
        title="abuse.ch Feodo Tracker",
        format="feodo",
        types=IP_TYPES,
        files=(
            FeedFile(
                "ipblocklist.json", "https://feodotracker.abuse.ch/downloads/ipblocklist.json"
            ),
        ),
        weight=0.9,
        category="botnet_c2",
        confidence=85,
        licence=ABUSE_CH_LICENCE,
        commercial_use_restricted=True,
        reference="https://feodotracker.abuse.ch/blocklist/",
        sync_interval=timedelta(hours=1),
    ),
    FeedSpec(
        name="tor_exits",
        title="Tor exit nodes",
        format="ip_list",
        types=IP_TYPES,
        files=(FeedFile("torbulkexitlist.txt", "https://check.torproject.org/torbulkexitlist"),),
        # Tor exit traffic is anonymised, not malicious by itself, so the weight
        # stays below the default strong_weight (0.6): a Tor flag alone can
        # never make an indicator malicious.
        weight=0.2,
        category="tor",
        confidence=50,
        licence="Tor Project data, published for public use; see https://metrics.torproject.org/.",
        reference="https://check.torproject.org/torbulkexitlist",
        sync_interval=timedelta(hours=1),
    ),
    FeedSpec(
        name="et_compromised",
        title="Emerging Threats compromised IPs",
        format="ip_list",
        types=IP_TYPES,
        files=(
            FeedFile(
                "compromised-ips.txt",
                "https://rules.emergingthreats.net/blockrules/compromised-ips.txt",
            ),
        ),
        weight=0.7,
        category="compromised",
        confidence=70,
        licence="Emerging Threats Open (Proofpoint); see the ET Open terms before redistribution.",
        reference="https://rules.emergingthreats.net/blockrules/",
        sync_interval=timedelta(hours=24),
    ),
    FeedSpec(
        name="firehol_level1",
        title="FireHOL level1",
        format="ip_list",
        types=IP_TYPES,
        files=(
            FeedFile(
                "firehol_level1.netset",
                "https://raw.githubusercontent.com/firehol/blocklist-ipsets/master/firehol_level1.netset",
            ),
        ),
        weight=0.7,
        category="attacks",
        confidence=70,
        licence=(
            "FireHOL aggregates third-party lists that keep their own terms; one of them "
            "(DShield) is CC BY-NC-SA, so commercial use is restricted."
        ),
        commercial_use_restricted=True,
        reference="https://iplists.firehol.org/?ipset=firehol_level1",
        public_only=True,
        sync_interval=timedelta(hours=24),
    ),
    FeedSpec(
        name="spamhaus_drop",
        title="Spamhaus DROP",
        format="spamhaus_drop",
        types=IP_TYPES,
        files=(
            FeedFile("drop_v4.json", "https://www.spamhaus.org/drop/drop_v4.json"),
            FeedFile("drop_v6.json", "https://www.spamhaus.org/drop/drop_v6.json"),
        ),
        weight=0.9,
        category="hijacked_network",
        confidence=90,
        licence=(
            "Spamhaus DROP terms of use: free of charge for any organisation, with credit "
            "to The Spamhaus Project; download at most once an hour."
        ),
        reference="https://www.spamhaus.org/blocklists/do-not-route-or-peer/",
        sync_interval=timedelta(hours=12),
    ),
    FeedSpec(
        name="dshield",
        title="DShield recommended block list",
        format="dshield_block",
        types=IP_TYPES,
        files=(FeedFile("block.txt", "https://feeds.dshield.org/block.txt"),),
        weight=0.5,
        category="scanner",
        confidence=60,
        licence="DShield data: CC BY-NC-SA 2.5 (stated in the file).",
        commercial_use_restricted=True,
        reference="https://isc.sans.edu/block.html",
        sync_interval=timedelta(hours=12),
    ),
    FeedSpec(
        name="openphish",
        title="OpenPhish community feed",
        format="url_list",
        types=URL_TYPES,
        files=(FeedFile("feed.txt", "https://openphish.com/feed.txt"),),
        weight=0.8,
        category="phishing",
        confidence=80,
        licence="OpenPhish community feed terms: non-commercial use only; https://openphish.com/terms.html",
        commercial_use_restricted=True,
        reference="https://openphish.com/",
        sync_interval=timedelta(hours=12),
    ),
    FeedSpec(
        name="urlhaus_online",
        title="abuse.ch URLhaus online URLs",
        format="urlhaus_csv",
        types=URL_TYPES,
        files=(FeedFile("csv_online.csv", "https://urlhaus.abuse.ch/downloads/csv_online/"),),
        weight=0.9,
        category="malware_distribution",
        confidence=85,
        licence=ABUSE_CH_LICENCE,
        commercial_use_restricted=True,
        reference="https://urlhaus.abuse.ch/",
        sync_interval=timedelta(hours=1),
    ),
    FeedSpec(
        name="urlhaus_hosts",
        title="abuse.ch URLhaus hosts",
        format="hosts",
        types=HOST_TYPES,
        files=(FeedFile("hostfile.txt", "https://urlhaus.abuse.ch/downloads/hostfile/"),),
        # Many listed hosts are compromised legitimate sites, so a host hit is
        # weaker than a hit on the exact malware URL.
        weight=0.6,
        category="malware_distribution",
        confidence=70,
        licence=ABUSE_CH_LICENCE,
        commercial_use_restricted=True,
        reference="https://urlhaus.abuse.ch/",
        sync_interval=timedelta(hours=1),
    ),
    FeedSpec(
        name="misp_public_dns",
        title="MISP warning lists: public DNS resolvers",
        format="misp_warninglist",
        types=IP_TYPES,
        files=_misp(("public-dns-v4", "public-dns-v6")),
        weight=0.7,
        category="public_dns",
        confidence=90,
        licence=MISP_LICENCE,
        reference=MISP_REFERENCE,
        benign_only=True,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="misp_cdn_cloud",
        title="MISP warning lists: CDN and cloud ranges",
        format="misp_warninglist",
        types=IP_TYPES,
        files=_misp(
            (
                "akamai",
                "amazon-aws",
                "cloudflare",
                "fastly",
                "google-gcp",
                "microsoft-azure",
                "microsoft-office365-ip",
                "oracle-oci",
            )
        ),
        # Shared infrastructure also hosts attackers, so a hit is a weak
        # benign hint, not a clearance.
        weight=0.4,
        category="shared_infrastructure",
        confidence=60,
        licence=MISP_LICENCE,
        reference=MISP_REFERENCE,
        benign_only=True,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="misp_top_sites",
        title="MISP warning lists: Tranco top 10,000 domains",
        format="misp_warninglist",
        types=HOST_TYPES,
        files=_misp(("tranco10k",)),
        # Exact names only: subdomains of popular sites include user-content
        # hosts (pages and app platforms) that phishing kits use every day.
        weight=0.4,
        category="top_site",
        confidence=60,
        licence=MISP_LICENCE,
        reference=MISP_REFERENCE,
        benign_only=True,
        match_subdomains=False,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="misp_empty_hashes",
        title="MISP warning lists: hashes of empty files",
        format="misp_warninglist",
        types=HASH_TYPES,
        files=_misp(("empty-hashes",)),
        weight=1.0,
        category="empty_file",
        confidence=100,
        licence=MISP_LICENCE,
        reference=MISP_REFERENCE,
        benign_only=True,
        sync_interval=timedelta(days=30),
    ),
)

FEEDS_BY_NAME: Mapping[str, FeedSpec] = MappingProxyType({spec.name: spec for spec in FEEDS})


def feed_spec(name: str, specs: tuple[FeedSpec, ...] = FEEDS) -> FeedSpec | None:
    """Return the spec called ``name`` in ``specs``, or None."""
    for spec in specs:
        if spec.name == name:
            return spec
    return None
