"""Calibration: real published feeds through the real engine give the verdicts an analyst expects.

The feeds of the shared corpus are imported into a temporary data directory
and every API and context source is switched off, so the verdicts come from
the feed catalogue's weights and confidences and the scoring rules alone.
Samples are deterministic (every n-th value of a list), so a failure names
the same addresses on every run. docs/sources.md records the numbers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from iocscope.config import Settings, settings_from_mapping
from iocscope.engine.model import Enrichment, Verdict
from iocscope.runtime import open_runtime
from iocscope.sources.contract import SourceKind
from iocscope.sources.feeds.store import import_feed
from iocscope.sources.registry import catalogue
from tests.support.corpus import corpus_path

pytestmark = pytest.mark.corpus

SAMPLE_SIZE = 200
# Corpus files (below feeds/) imported into each feed of the catalogue.
CORPUS_FEEDS: dict[str, tuple[str, ...]] = {
    "ipsum": ("ipsum/ipsum.txt",),
    "feodo": ("abusech/feodo_ipblocklist.csv",),
    "firehol_level1": ("firehol/firehol_level1.netset",),
    "tor_exits": ("tor/tor-exit-nodes.lst",),
    "et_compromised": ("emergingthreats/compromised-ips_via-cps_2026-08.txt",),
    "spamhaus_drop": ("spamhaus/intelmq_test_drop_2015.txt",),
    "dshield": ("dshield/intelmq_test_block.txt",),
    "openphish": ("openphish/feed.txt",),
    "misp_public_dns": (
        "misp-warninglists/public-dns-v4.json",
        "misp-warninglists/public-dns-v6.json",
    ),
    "misp_cdn_cloud": tuple(
        f"misp-warninglists/{name}.json"
        for name in (
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
    "misp_top_sites": ("misp-warninglists/tranco10k.json",),
    "misp_empty_hashes": ("misp-warninglists/empty-hashes.json",),
}
WELL_KNOWN_RESOLVERS = ("8.8.8.8", "1.1.1.1", "9.9.9.9")
CDN_LISTS = ("cloudflare", "fastly", "akamai")


def every_nth(values: Sequence[str], count: int = SAMPLE_SIZE) -> list[str]:
    """Return ``count`` values spread evenly over ``values``, always the same ones."""
    step = max(1, len(values) // count)
    return list(values[::step][:count])


def offline_settings(data_dir: Path) -> Settings:
    """Settings with every API and context source off, so only the feeds answer."""
    off = {
        entry.meta.name: {"enabled": False}
        for entry in catalogue()
        if entry.meta.kind is not SourceKind.FEED
    }
    return settings_from_mapping({"data_dir": str(data_dir), "sources": off})


def misp_items(name: str) -> list[str]:
    path = corpus_path("feeds", "misp-warninglists", f"{name}.json")
    items: list[str] = json.loads(path.read_text(encoding="utf-8"))["list"]
    return items


def ipsum_strong() -> list[str]:
    """Return the IPsum addresses named by five or more blocklists, in file order."""
    path = corpus_path("feeds", "ipsum", "ipsum.txt")
    rows = (line.split() for line in path.read_text(encoding="utf-8").splitlines())
    return [row[0] for row in rows if row and row[0][0] != "#" and int(row[1]) >= 5]


def feodo_rows() -> list[dict[str, str]]:
    path = corpus_path("feeds", "abusech", "feodo_ipblocklist.csv")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith('"2'):
            _first_seen, address, port, status, *_ = line.strip('"').split('","')
            rows.append({"address": address, "port": port, "status": status})
    return rows


def cdn_addresses() -> list[str]:
    """Return the second and the middle address of every CDN network of the MISP lists."""
    addresses = []
    for name in CDN_LISTS:
        for item in misp_items(name):
            network = ipaddress.ip_network(item, strict=False)
            size = network.num_addresses
            addresses += [str(network[min(1, size - 1)]), str(network[size // 2])]
    return list(dict.fromkeys(addresses))


def samples() -> dict[str, list[str]]:
    return {
        "ipsum": every_nth(ipsum_strong()),
        "feodo": [row["address"] for row in feodo_rows()],
        "resolvers": [*WELL_KNOWN_RESOLVERS, *every_nth(misp_items("public-dns-v4"))],
        "top_sites": every_nth(misp_items("tranco10k")),
        "cdn": cdn_addresses(),
    }


async def enrich_all(settings: Settings, values: list[str]) -> dict[str, Enrichment]:
    async with open_runtime(settings) as runtime:
        return {value: await runtime.engine.enrich_value(value) for value in values}


def import_corpus(data_dir: Path) -> None:
    for feed, files in CORPUS_FEEDS.items():
        for name in files:
            import_feed(data_dir, feed, corpus_path("feeds", name))


@pytest.fixture(scope="module")
def sampled() -> dict[str, list[str]]:
    return samples()


@pytest.fixture(scope="module")
def enriched(
    tmp_path_factory: pytest.TempPathFactory, sampled: dict[str, list[str]]
) -> dict[str, Enrichment]:
    data_dir = tmp_path_factory.mktemp("calibration")
    import_corpus(data_dir)
    values = list(dict.fromkeys(value for group in sampled.values() for value in group))
    return asyncio.run(enrich_all(offline_settings(data_dir), values))


def hinted(enrichment: Enrichment) -> bool:
    """Tell whether an allowlist (a benign hint) lists the indicator."""
    return any(result.benign for result in enrichment.results)


def flaggers(enrichment: Enrichment) -> set[str]:
    return {result.source for result in enrichment.results if result.flagged}


def verdicts_of(
    enriched: dict[str, Enrichment], values: list[str], *, hint: bool | None = None
) -> Iterator[tuple[str, Verdict]]:
    for value in values:
        enrichment = enriched[value]
        if hint is None or hinted(enrichment) is hint:
            yield value, enrichment.assessment.verdict


def test_samples_are_full(sampled: dict[str, list[str]]) -> None:
    assert len(sampled["ipsum"]) == SAMPLE_SIZE
    assert len(sampled["feodo"]) == 28
    assert len(sampled["resolvers"]) == SAMPLE_SIZE + len(WELL_KNOWN_RESOLVERS)
    assert len(sampled["top_sites"]) == SAMPLE_SIZE
    assert len(sampled["cdn"]) > 300


def test_ipsum_five_lists_malicious(
    enriched: dict[str, Enrichment], sampled: dict[str, list[str]]
) -> None:
    outside_cloud = dict(verdicts_of(enriched, sampled["ipsum"], hint=False))
    wrong = {value: verdict for value, verdict in outside_cloud.items() if verdict != "malicious"}
    assert wrong == {}
    # Most strong IPsum addresses lie outside every cloud and CDN range.
    assert len(outside_cloud) >= 170


def test_feodo_malicious(enriched: dict[str, Enrichment], sampled: dict[str, list[str]]) -> None:
    outside_cloud = dict(verdicts_of(enriched, sampled["feodo"], hint=False))
    wrong = {value: verdict for value, verdict in outside_cloud.items() if verdict != "malicious"}
    assert wrong == {}
    assert len(outside_cloud) >= 25


def test_cloud_hint_caps_single_strong_flag(
    enriched: dict[str, Enrichment], sampled: dict[str, list[str]]
) -> None:
    # Shared infrastructure is not malicious on one source's word: one strong
    # flag on a cloud or CDN address stops at 69, two strong flags overrule it.
    on_cloud = [enriched[value] for value in sampled["ipsum"] + sampled["feodo"]]
    on_cloud = [enrichment for enrichment in on_cloud if hinted(enrichment)]
    single = [item.assessment for item in on_cloud if len(flaggers(item)) == 1]
    several = [item.assessment for item in on_cloud if len(flaggers(item)) > 1]
    assert len(single) >= 10
    assert {(item.verdict, item.score) for item in single} == {(Verdict.SUSPICIOUS, 69)}
    assert {item.verdict for item in several} <= {Verdict.MALICIOUS}


def test_offline_feodo_alone_malicious(enriched: dict[str, Enrichment]) -> None:
    offline = [row["address"] for row in feodo_rows() if row["status"] == "offline"]
    alone = [
        enriched[address]
        for address in offline
        if flaggers(enriched[address]) == {"feodo"} and not hinted(enriched[address])
    ]
    assert len(alone) >= 5
    assert {enrichment.assessment.score for enrichment in alone} == {72}
    assert {enrichment.assessment.verdict for enrichment in alone} == {Verdict.MALICIOUS}


@pytest.mark.parametrize(
    "group", ["resolvers", "top_sites", "cdn"], ids=["public-dns", "tranco", "cdn"]
)
def test_well_known_infrastructure_benign(
    enriched: dict[str, Enrichment], sampled: dict[str, list[str]], group: str
) -> None:
    verdicts = dict(verdicts_of(enriched, sampled[group]))
    wrong = {value: verdict for value, verdict in verdicts.items() if verdict != "benign"}
    assert wrong == {}


def test_resolvers_by_name(enriched: dict[str, Enrichment]) -> None:
    for address in WELL_KNOWN_RESOLVERS:
        assert enriched[address].assessment.verdict is Verdict.BENIGN
        assert hinted(enriched[address])


def write_feed(directory: Path, feed: str, name: str, text: str) -> None:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    import_feed(directory / "data", feed, path)


async def test_cdn_address_with_weak_feed(tmp_path: Path) -> None:
    # 151.101.130.137 is a Fastly edge address, 104.16.1.1 a Cloudflare one.
    for name in CDN_LISTS:
        import_feed(
            tmp_path / "data",
            "misp_cdn_cloud",
            corpus_path("feeds", "misp-warninglists", f"{name}.json"),
        )
    write_feed(tmp_path, "blocklist_de", "all.txt", "151.101.130.137\n104.16.1.1\n")
    write_feed(tmp_path, "dshield", "block.txt", "104.16.1.0\t104.16.1.255\t24\t900\n")

    found = await enrich_all(offline_settings(tmp_path / "data"), ["151.101.130.137", "104.16.1.1"])

    fastly = found["151.101.130.137"].assessment
    assert fastly.verdict is Verdict.BENIGN
    assert fastly.score == 29
    # Two weak feeds on a CDN address are still only weak evidence.
    cloudflare = found["104.16.1.1"].assessment
    assert cloudflare.verdict is Verdict.BENIGN


async def test_cdn_hint_yields_to_two_strong_feeds(tmp_path: Path) -> None:
    import_feed(
        tmp_path / "data",
        "misp_cdn_cloud",
        corpus_path("feeds", "misp-warninglists", "fastly.json"),
    )
    write_feed(tmp_path, "ipsum", "ipsum.txt", "151.101.130.137\t8\n")
    write_feed(
        tmp_path,
        "feodo",
        "ipblocklist.csv",
        '"2024-05-01 10:00:00","151.101.130.137","443","online","2024-05-01","QakBot"\n',
    )

    found = await enrich_all(offline_settings(tmp_path / "data"), ["151.101.130.137"])

    assessment = found["151.101.130.137"].assessment
    assert assessment.verdict is Verdict.MALICIOUS
    assert assessment.score >= 90
