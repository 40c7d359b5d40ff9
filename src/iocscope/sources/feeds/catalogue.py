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
THREATFOX_TYPES = frozenset(
    {
        *IP_TYPES,
        *HOST_TYPES,
        IndicatorType.MD5,
        IndicatorType.SHA1,
        IndicatorType.SHA256,
    }
)

MISP_RAW = "https://raw.githubusercontent.com/MISP/misp-warninglists/main/lists"
MISP_REFERENCE = "https://github.com/MISP/misp-warninglists"
MISP_LICENCE = "MISP warning lists: CC0 1.0 (public domain dedication)."
PROVIDER_RANGES_LICENCE = (
    "Published by the provider for firewall and allowlist configuration; no licence "
    "restricts that use."
)
# Shared infrastructure also hosts attackers (rented VMs, CDN-fronted
# phishing), so a hit on a provider's published ranges is a benign hint, not
# a clearance. The weight of an allowlist does not enter the score: any
# benign hint caps flags from weak sources below suspicious, keeps one strong
# flag at suspicious and yields to two strong flags (docs/scoring.md,
# rule 3). 0.4 only keeps these lists listed as weak in `iocscope sources`.
ALLOWLIST_WEIGHT = 0.4
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
        name="threatfox_export",
        title="abuse.ch ThreatFox recent IOCs",
        format="threatfox",
        types=THREATFOX_TYPES,
        files=(FeedFile("recent.json", "https://threatfox.abuse.ch/export/json/recent/"),),
        # Validated malware IOCs, each with its reporter's confidence_level
        # (usually 50, 75 or 100): 0.8 makes a confidence of 100 malicious on
        # its own (80) and keeps a confidence of 50 suspicious (40). Entries
        # without a confidence_level count as 50, ThreatFox's submission default.
        weight=0.8,
        category="malware",
        confidence=50,
        licence=ABUSE_CH_LICENCE,
        commercial_use_restricted=True,
        reference="https://threatfox.abuse.ch/export/",
        sync_interval=timedelta(hours=1),
    ),
    FeedSpec(
        name="malwarebazaar_recent",
        title="abuse.ch MalwareBazaar recent SHA-256 hashes",
        format="hash_list",
        types=frozenset({IndicatorType.SHA256}),
        files=(FeedFile("sha256_recent.txt", "https://bazaar.abuse.ch/export/txt/sha256/recent/"),),
        # Every hash is a sample that was submitted and classified as malware
        # in the last 48 hours: a hit is strong evidence on its own (81).
        weight=0.9,
        category="malware",
        confidence=90,
        licence=ABUSE_CH_LICENCE,
        commercial_use_restricted=True,
        reference="https://bazaar.abuse.ch/export/",
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
        # Weak (0.5, was 0.7): its strong parts (Feodo, Spamhaus DROP, DShield)
        # are feeds of their own here, so a strong weight counted them twice,
        # and its fullbogons part lists unallocated space, which goes stale as
        # registries allocate it. Calibrated on the public DNS resolvers of the
        # MISP list: 3 of 200 sampled fell in "bogon" networks of a 2021
        # FireHOL level1 file (103.176.0.0/12 and others, allocated since),
        # which the strong weight of 0.7 made suspicious despite the allowlist.
        weight=0.5,
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
        name="firehol_level2",
        title="FireHOL level2",
        format="ip_list",
        types=IP_TYPES,
        files=(
            FeedFile(
                "firehol_level2.netset",
                "https://raw.githubusercontent.com/firehol/blocklist-ipsets/master/firehol_level2.netset",
            ),
        ),
        # Attackers seen in the last 48 hours (blocklist.de, DShield, GreenSnow):
        # brute force and scans from many infected or dynamic addresses, so a
        # hit alone is suspicious (30), never malicious. blocklist.de is also a
        # feed of its own here; two correlated weak lists still stay below 70.
        weight=0.5,
        category="attacks",
        confidence=60,
        licence=(
            "FireHOL aggregates third-party lists that keep their own terms; one of them "
            "(DShield) is CC BY-NC-SA, so commercial use is restricted."
        ),
        commercial_use_restricted=True,
        reference="https://iplists.firehol.org/?ipset=firehol_level2",
        public_only=True,
        sync_interval=timedelta(hours=24),
    ),
    FeedSpec(
        name="blocklist_de",
        title="blocklist.de all attackers",
        format="ip_list",
        types=IP_TYPES,
        files=(FeedFile("all.txt", "https://lists.blocklist.de/lists/all.txt"),),
        # Addresses reported by fail2ban users for SSH, mail, FTP and web
        # attacks in the last 48 hours: real attackers, but mostly compromised
        # hosts that change hands, so weak evidence (30 alone).
        weight=0.5,
        category="attacks",
        confidence=60,
        licence=(
            "blocklist.de: a free, volunteer-run service; the lists carry no licence text, "
            "so ask blocklist.de before redistributing them."
        ),
        reference="https://www.blocklist.de/en/export.html",
        sync_interval=timedelta(hours=12),
    ),
    FeedSpec(
        name="cins_army",
        title="CINS Army list",
        format="ip_list",
        types=IP_TYPES,
        files=(FeedFile("ci-badguys.txt", "https://cinsscore.com/list/ci-badguys.txt"),),
        # Addresses with a poor CINS score from Sentinel IPS sensors: mostly
        # scanners and brute-force sources, so weak evidence (30 alone).
        weight=0.5,
        category="attacks",
        confidence=60,
        licence=(
            "CINS Army list by Sentinel IPS: offered free of charge to the security "
            "community; no licence text is published with the list."
        ),
        reference="https://cinsarmy.com/",
        sync_interval=timedelta(hours=6),
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
        # Spamhaus merged EDROP into DROP on 10 April 2024 (Spamhaus DROP FAQ),
        # so this one feed covers both; there is no separate EDROP file.
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
        # Microsoft publishes the Azure ranges only in a Service Tags file whose
        # download address changes with every weekly release, so Azure has no
        # feed of its own and comes from the MISP microsoft-azure list here.
        # NOTE: that MISP list is updated less often than Microsoft's file, so
        # new Azure ranges can be missing; a Service Tags parser would fix it.
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=MISP_LICENCE,
        reference=MISP_REFERENCE,
        benign_only=True,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="aws_ip_ranges",
        title="Amazon Web Services IP ranges",
        format="aws_ip_ranges",
        types=IP_TYPES,
        files=(FeedFile("ip-ranges.json", "https://ip-ranges.amazonaws.com/ip-ranges.json"),),
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=PROVIDER_RANGES_LICENCE,
        reference="https://docs.aws.amazon.com/vpc/latest/userguide/aws-ip-ranges.html",
        benign_only=True,
        sync_interval=timedelta(days=1),
    ),
    FeedSpec(
        name="google_ip_ranges",
        title="Google and Google Cloud IP ranges",
        format="google_ip_ranges",
        types=IP_TYPES,
        files=(
            FeedFile("cloud.json", "https://www.gstatic.com/ipranges/cloud.json"),
            FeedFile("goog.json", "https://www.gstatic.com/ipranges/goog.json"),
        ),
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=PROVIDER_RANGES_LICENCE,
        reference="https://support.google.com/a/answer/10026322",
        benign_only=True,
        sync_interval=timedelta(days=1),
    ),
    FeedSpec(
        name="cloudflare_ips",
        title="Cloudflare IP ranges",
        format="ip_list",
        types=IP_TYPES,
        files=(
            FeedFile("ips-v4.txt", "https://www.cloudflare.com/ips-v4/"),
            FeedFile("ips-v6.txt", "https://www.cloudflare.com/ips-v6/"),
        ),
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=PROVIDER_RANGES_LICENCE,
        reference="https://www.cloudflare.com/ips/",
        benign_only=True,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="fastly_ips",
        title="Fastly IP ranges",
        format="fastly_ip_list",
        types=IP_TYPES,
        files=(FeedFile("public-ip-list.json", "https://api.fastly.com/public-ip-list"),),
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=PROVIDER_RANGES_LICENCE,
        reference="https://www.fastly.com/documentation/reference/api/utils/public-ip-list/",
        benign_only=True,
        sync_interval=timedelta(days=7),
    ),
    FeedSpec(
        name="oracle_oci_ranges",
        title="Oracle Cloud Infrastructure IP ranges",
        format="oci_ip_ranges",
        types=IP_TYPES,
        files=(
            FeedFile(
                "public_ip_ranges.json",
                "https://docs.oracle.com/en-us/iaas/tools/public_ip_ranges.json",
            ),
        ),
        weight=ALLOWLIST_WEIGHT,
        category="shared_infrastructure",
        confidence=60,
        licence=PROVIDER_RANGES_LICENCE,
        reference="https://docs.oracle.com/iaas/Content/General/Concepts/addressranges.htm",
        benign_only=True,
        # Oracle asks for at most one download a day.
        sync_interval=timedelta(days=1),
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
