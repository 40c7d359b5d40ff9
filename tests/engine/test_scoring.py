"""Tests of the scoring model: scenarios, exact reasons and properties."""

from __future__ import annotations

from dataclasses import replace
from random import Random

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from iocscope.config import ScoringSettings
from iocscope.engine.model import Verdict
from iocscope.engine.scoring import assess, source_weight
from iocscope.indicators.model import IndicatorType
from iocscope.sources.contract import SourceKind, SourceMeta, SourceResult, Status

IP_TYPES = frozenset({IndicatorType.IPV4, IndicatorType.IPV6})


def meta(name: str, kind: SourceKind, weight: float, *, benign_only: bool = False) -> SourceMeta:
    return SourceMeta(
        name=name,
        title=name,
        kind=kind,
        types=IP_TYPES,
        needs_key=kind is SourceKind.API,
        weight=weight,
        benign_only=benign_only,
    )


METAS = {
    item.name: item
    for item in (
        meta("ipsum", SourceKind.FEED, 0.5),
        meta("feodo", SourceKind.FEED, 0.5),
        meta("blocklist", SourceKind.FEED, 0.2),
        meta("tor", SourceKind.FEED, 0.3),
        meta("abuseipdb", SourceKind.API, 0.8),
        meta("virustotal", SourceKind.API, 0.8),
        meta("greynoise", SourceKind.API, 0.5),
        meta("otx", SourceKind.API, 0.5),
        meta("allowlist", SourceKind.FEED, 0.0, benign_only=True),
        meta("geoip", SourceKind.CONTEXT, 0.0),
    )
}
DEFAULTS = ScoringSettings()


def flag(source: str, confidence: int = 0, summary: str = "") -> SourceResult:
    return SourceResult(
        source=source,
        status=Status.OK,
        found=True,
        flagged=True,
        confidence=confidence,
        summary=summary,
    )


def found(source: str, summary: str = "") -> SourceResult:
    return SourceResult(source=source, status=Status.OK, found=True, summary=summary)


def not_found(source: str) -> SourceResult:
    return SourceResult(source=source, status=Status.OK)


def hint(source: str, summary: str = "") -> SourceResult:
    return SourceResult(source=source, status=Status.OK, found=True, benign=True, summary=summary)


def failed(source: str, status: Status = Status.ERROR, error: str = "") -> SourceResult:
    return SourceResult(source=source, status=status, error=error or None)


SCENARIOS = [
    ("one-weak-feed", [flag("ipsum")], DEFAULTS, 50, Verdict.SUSPICIOUS),
    (
        "one-weak-feed-low-threshold",
        [flag("ipsum")],
        ScoringSettings(malicious_threshold=40),
        39,
        Verdict.SUSPICIOUS,
    ),
    ("two-independent-feeds", [flag("ipsum"), flag("feodo")], DEFAULTS, 75, Verdict.MALICIOUS),
    ("same-feed-twice", [flag("ipsum"), flag("ipsum")], DEFAULTS, 50, Verdict.SUSPICIOUS),
    ("strong-high-confidence", [flag("abuseipdb", 90)], DEFAULTS, 72, Verdict.MALICIOUS),
    ("strong-low-confidence", [flag("abuseipdb", 50)], DEFAULTS, 40, Verdict.SUSPICIOUS),
    (
        "strong-below-high-confidence-low-threshold",
        [flag("abuseipdb", 70)],
        ScoringSettings(malicious_threshold=50),
        49,
        Verdict.SUSPICIOUS,
    ),
    (
        "threshold-override-makes-malicious",
        [flag("abuseipdb", 80)],
        ScoringSettings(malicious_threshold=60),
        64,
        Verdict.MALICIOUS,
    ),
    (
        "default-threshold-keeps-suspicious",
        [flag("abuseipdb", 80)],
        DEFAULTS,
        64,
        Verdict.SUSPICIOUS,
    ),
    (
        "suspicious-threshold-override",
        [flag("ipsum")],
        ScoringSettings(suspicious_threshold=60),
        50,
        Verdict.UNKNOWN,
    ),
    (
        "weight-override-lowers-score",
        [flag("ipsum")],
        ScoringSettings(weights={"ipsum": 0.2}),
        20,
        Verdict.UNKNOWN,
    ),
    (
        "weight-override-makes-strong",
        [flag("ipsum")],
        ScoringSettings(weights={"ipsum": 0.9}),
        90,
        Verdict.MALICIOUS,
    ),
    ("benign-hint-and-weak-flag", [hint("allowlist"), flag("ipsum")], DEFAULTS, 29, Verdict.BENIGN),
    (
        "benign-hint-and-two-weak-flags",
        [hint("allowlist"), flag("ipsum"), flag("feodo")],
        DEFAULTS,
        29,
        Verdict.BENIGN,
    ),
    (
        "benign-hint-and-one-strong-flag",
        [hint("greynoise"), flag("abuseipdb", 100)],
        DEFAULTS,
        69,
        Verdict.SUSPICIOUS,
    ),
    (
        "benign-hint-and-two-strong-flags",
        [hint("greynoise"), flag("abuseipdb", 90), flag("virustotal", 90)],
        DEFAULTS,
        92,
        Verdict.MALICIOUS,
    ),
    ("benign-hint-alone", [hint("greynoise")], DEFAULTS, 0, Verdict.BENIGN),
    ("allowlist-found", [found("allowlist")], DEFAULTS, 0, Verdict.BENIGN),
    ("clean-api-answer", [found("abuseipdb"), not_found("ipsum")], DEFAULTS, 0, Verdict.BENIGN),
    (
        "clean-answer-and-low-flag",
        [found("abuseipdb"), flag("blocklist")],
        DEFAULTS,
        20,
        Verdict.UNKNOWN,
    ),
    ("nothing-found", [not_found("ipsum"), not_found("abuseipdb")], DEFAULTS, 0, Verdict.UNKNOWN),
    ("feed-listing-without-judgement", [found("tor")], DEFAULTS, 0, Verdict.UNKNOWN),
    (
        "all-errors",
        [failed("abuseipdb"), failed("virustotal", Status.RATE_LIMITED)],
        DEFAULTS,
        0,
        Verdict.UNKNOWN,
    ),
    ("no-results", [], DEFAULTS, 0, Verdict.UNKNOWN),
    ("context-only", [found("geoip")], DEFAULTS, 0, Verdict.UNKNOWN),
    ("context-flag-ignored", [flag("geoip", 100)], DEFAULTS, 0, Verdict.UNKNOWN),
    ("errors-add-nothing", [flag("ipsum"), failed("abuseipdb")], DEFAULTS, 50, Verdict.SUSPICIOUS),
    ("muted-source", [flag("ipsum")], ScoringSettings(weights={"ipsum": 0}), 0, Verdict.UNKNOWN),
    ("unregistered-source", [flag("mystery", 100)], DEFAULTS, 0, Verdict.UNKNOWN),
    ("confidence-above-range", [flag("abuseipdb", 250)], DEFAULTS, 80, Verdict.MALICIOUS),
]


@pytest.mark.parametrize(
    ("results", "settings", "score", "verdict"),
    [scenario[1:] for scenario in SCENARIOS],
    ids=[scenario[0] for scenario in SCENARIOS],
)
def test_scenario(
    results: list[SourceResult], settings: ScoringSettings, score: int, verdict: Verdict
) -> None:
    assessment = assess(results, METAS, settings)
    assert assessment.score == score
    assert assessment.verdict is verdict


def test_reasons_ordered_by_contribution() -> None:
    results = [
        flag("ipsum", 60, "listed by 6 blocklists"),
        flag("abuseipdb", 90, "reported 42 times"),
        found("tor", "Tor exit node"),
        failed("virustotal", Status.RATE_LIMITED, "virustotal: daily budget of 500 calls is spent"),
        found("geoip", "NL, AS64496"),
    ]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "abuseipdb: reported 42 times (confidence 90, weight 0.8)",
        "ipsum: listed by 6 blocklists (confidence 60, weight 0.5)",
        "tor: Tor exit node (no judgement)",
        "virustotal: rate limited (daily budget of 500 calls is spent)",
    )


def test_reason_names_unstated_confidence() -> None:
    results = [SourceResult("feodo", Status.OK, found=True, flagged=True, categories=("c2",))]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "feodo: flagged as c2 (confidence not stated, counted as 100, weight 0.5)",
    )


def test_reasons_explain_benign_veto() -> None:
    results = [hint("allowlist", "in the Tranco top 1000"), flag("ipsum")]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "ipsum: flagged (confidence not stated, counted as 100, weight 0.5)",
        "allowlist: in the Tranco top 1000 (benign hint)",
        "benign hint outweighs flags from weak sources (weight below 0.6), "
        "so the score stays at 29 or less",
    )


def test_reasons_explain_benign_limit() -> None:
    results = [hint("greynoise", "RIOT: known business service"), flag("abuseipdb", 100)]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "abuseipdb: flagged (confidence 100, weight 0.8)",
        "greynoise: RIOT: known business service (benign hint)",
        "benign hint limits the verdict to suspicious while only one strong source flags it: "
        "score capped at 69",
    )


def test_reasons_explain_corroboration_cap() -> None:
    assessment = assess([flag("ipsum")], METAS, ScoringSettings(malicious_threshold=40))
    assert assessment.reasons[-1] == (
        "malicious needs a strong source (weight 0.6 or more) with confidence 75 or more, "
        "or two flagging sources: score capped at 39"
    )


def test_reasons_of_clean_answer() -> None:
    assessment = assess([found("abuseipdb", "0 reports")], METAS, DEFAULTS)
    assert assessment.reasons == ("abuseipdb: 0 reports (clean answer)",)


def test_reasons_when_all_failed() -> None:
    results = [
        failed("virustotal", Status.RATE_LIMITED),
        failed("abuseipdb", error="abuseipdb: no answer within 5 s"),
        failed("geoip"),
    ]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "no source answered, so nothing is known about it",
        "abuseipdb: failed (no answer within 5 s)",
        "virustotal: rate limited",
    )


@pytest.mark.parametrize(
    ("results", "headline"),
    [
        ([not_found("ipsum"), not_found("otx")], "no source had a judgement on it (2 answered)"),
        (
            [not_found("ipsum"), failed("otx", Status.SKIPPED)],
            "no source that answered had a judgement on it, and 1 could not answer",
        ),
        (
            [failed("otx"), not_found("otx")],
            "no source had a judgement on it (1 answered)",
        ),
        ([], "no source was asked"),
    ],
    ids=["all-answered", "some-failed", "failed-then-answered", "none"],
)
def test_no_data_headline(results: list[SourceResult], headline: str) -> None:
    assert assess(results, METAS, DEFAULTS).reasons[0] == headline


def test_answer_hides_failure_of_same_source() -> None:
    results = [failed("abuseipdb"), flag("abuseipdb", 90)]
    assert assess(results, METAS, DEFAULTS).reasons == (
        "abuseipdb: flagged (confidence 90, weight 0.8)",
    )


def test_muted_and_unregistered_are_explained() -> None:
    results = [flag("ipsum"), flag("mystery"), flag("abuseipdb", 90)]
    settings = ScoringSettings(weights={"ipsum": 0.0})
    assert assess(results, METAS, settings).reasons == (
        "abuseipdb: flagged (confidence 90, weight 0.8)",
        "ipsum: flagged, but its weight is 0",
        "mystery: not a registered source, ignored",
    )


def test_source_weight_override() -> None:
    settings = ScoringSettings(weights={"ipsum": 0.3})
    assert source_weight("ipsum", METAS, settings) == 0.3


@pytest.mark.parametrize("override", [1.5, -0.5])
def test_weight_outside_range_rejected(override: float) -> None:
    with pytest.raises(ValidationError):
        ScoringSettings(weights={"ipsum": override})


def test_source_weight_default_from_meta() -> None:
    assert source_weight("abuseipdb", METAS, DEFAULTS) == 0.8


# Properties over generated sources, results and settings.

NAMES = [f"s{index}" for index in range(5)]


@st.composite
def metas_strategy(draw: st.DrawFn) -> dict[str, SourceMeta]:
    kinds = st.sampled_from(list(SourceKind))
    weights = st.floats(min_value=0.0, max_value=1.0)
    return {name: meta(name, draw(kinds), draw(weights)) for name in NAMES}


@st.composite
def settings_strategy_fn(draw: st.DrawFn) -> ScoringSettings:
    suspicious = draw(st.integers(1, 99))
    return ScoringSettings(
        malicious_threshold=draw(st.integers(suspicious + 1, 100)),
        suspicious_threshold=suspicious,
        strong_weight=draw(st.floats(min_value=0.0, max_value=1.0)),
        weights=draw(
            st.dictionaries(st.sampled_from(NAMES), st.floats(min_value=0.0, max_value=1.0))
        ),
    )


settings_strategy = settings_strategy_fn()


def results_strategy(
    *, benign: bool, flagged: bool | None = None
) -> st.SearchStrategy[SourceResult]:
    return st.builds(
        SourceResult,
        source=st.sampled_from(NAMES),
        status=st.sampled_from(list(Status)),
        found=st.booleans(),
        flagged=st.booleans() if flagged is None else st.just(flagged),
        benign=st.booleans() if benign else st.just(False),
        confidence=st.integers(-10, 200),
        summary=st.sampled_from(["", "listed"]),
        error=st.sampled_from([None, "timed out"]),
    )


@given(
    metas_strategy(),
    settings_strategy,
    st.lists(results_strategy(benign=True), max_size=8),
)
def test_score_within_range(
    metas: dict[str, SourceMeta], settings: ScoringSettings, results: list[SourceResult]
) -> None:
    assessment = assess(results, metas, settings)
    assert 0 <= assessment.score <= 100
    assert assessment.reasons


@given(
    metas_strategy(),
    settings_strategy,
    results_strategy(benign=False, flagged=True),
    st.lists(results_strategy(benign=True, flagged=False), max_size=6),
)
def test_single_weak_flag_never_malicious(
    metas: dict[str, SourceMeta],
    settings: ScoringSettings,
    weak: SourceResult,
    others: list[SourceResult],
) -> None:
    assume(source_weight(weak.source, metas, settings) < settings.strong_weight)
    weak = replace(weak, status=Status.OK)
    assert assess([weak, *others], metas, settings).verdict is not Verdict.MALICIOUS


@given(
    metas_strategy(),
    settings_strategy,
    st.lists(results_strategy(benign=False), max_size=6),
    results_strategy(benign=False, flagged=True),
)
def test_added_flag_never_lowers_score(
    metas: dict[str, SourceMeta],
    settings: ScoringSettings,
    results: list[SourceResult],
    extra: SourceResult,
) -> None:
    before = assess(results, metas, settings).score
    after = assess([*results, extra], metas, settings).score
    assert after >= before


@given(
    metas_strategy(),
    settings_strategy,
    st.lists(results_strategy(benign=True), max_size=6),
    st.randoms(use_true_random=False),
)
def test_order_of_results_irrelevant(
    metas: dict[str, SourceMeta],
    settings: ScoringSettings,
    results: list[SourceResult],
    random: Random,
) -> None:
    shuffled = list(results)
    random.shuffle(shuffled)
    assert assess(shuffled, metas, settings) == assess(results, metas, settings)
