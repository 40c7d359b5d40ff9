"""Scoring: turn the sources' answers about one indicator into a score, a verdict and reasons.

The model is written out in docs/scoring.md. In short, each flag adds
evidence ``weight * confidence / 100``; the pieces of evidence combine as
independent chances (noisy-OR) into a 0-100 score; a few rules then cap the
score so that one weak source or a benign hint cannot produce "malicious";
and the verdict is the band the score falls in. Every flag, benign hint,
clean answer, cap and failure adds one reason line.

``assess`` is a pure function: the same results and settings always give the
same assessment, whatever order the results come in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from iocscope.config import ScoringSettings
from iocscope.engine.model import Assessment, Verdict
from iocscope.sources.contract import SourceKind, SourceMeta, SourceResult, Status

# A flag with confidence 0 carries no confidence from its source (a feed
# either lists an indicator or not), so the listing counts in full and the
# source's weight alone sets how far it is trusted.
UNSTATED_CONFIDENCE = 100

# A strong source must flag with at least this confidence to make an
# indicator malicious on its own.
HIGH_CONFIDENCE = 75

_STATUS_WORDS = {
    Status.ERROR: "failed",
    Status.RATE_LIMITED: "rate limited",
    Status.SKIPPED: "skipped",
}


@dataclass(frozen=True, slots=True)
class Flag:
    """One source's flag and the evidence it adds (0.0-1.0)."""

    source: str
    weight: float
    confidence: int
    stated: bool
    evidence: float
    description: str

    def reason(self) -> str:
        confidence_text = (
            str(self.confidence) if self.stated else f"not stated, counted as {self.confidence}"
        )
        return (
            f"{self.source}: {self.description} "
            f"(confidence {confidence_text}, weight {self.weight:g})"
        )


@dataclass(slots=True)
class _Evidence:
    """The results of one assessment, sorted by what they mean for the verdict."""

    flags: dict[str, Flag] = field(default_factory=dict)
    muted: set[str] = field(default_factory=set)
    hints: dict[str, str] = field(default_factory=dict)
    clean: dict[str, str] = field(default_factory=dict)
    listed: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    unregistered: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)


def assess(
    results: Sequence[SourceResult],
    metas: Mapping[str, SourceMeta],
    settings: ScoringSettings,
) -> Assessment:
    """Combine source results into a 0-100 score, a verdict and the reasons for both.

    ``metas`` maps source names to their metadata; ``settings.weights``
    overrides a source's default weight. Results of context sources and of
    sources missing from ``metas`` never count. Results whose status is not
    ``ok`` add only a reason line.
    """
    evidence = _sort_results(results, metas, settings)
    flags = sorted(evidence.flags.values(), key=lambda flag: (-flag.evidence, flag.source))
    if not flags and not evidence.hints and not evidence.clean:
        return Assessment(0, Verdict.UNKNOWN, _no_data_reasons(evidence))

    raw = _noisy_or(flag.evidence for flag in flags)
    score, notes = _apply_rules(raw, flags, evidence, settings)
    verdict = _verdict(score, flags, evidence, settings)
    reasons = [flag.reason() for flag in flags]
    reasons += [
        f"{source}: {text} (benign hint)" for source, text in sorted(evidence.hints.items())
    ]
    reasons += [
        f"{source}: {text} (clean answer)" for source, text in sorted(evidence.clean.items())
    ]
    reasons += notes
    reasons += _minor_reasons(evidence)
    return Assessment(score, verdict, tuple(reasons))


def source_weight(name: str, metas: Mapping[str, SourceMeta], settings: ScoringSettings) -> float:
    """Return the weight of a source: the configured override, else its default, in 0.0-1.0."""
    weight = settings.weights.get(name)
    if weight is None:
        weight = metas[name].weight
    return min(1.0, max(0.0, weight))


def _sort_results(
    results: Iterable[SourceResult], metas: Mapping[str, SourceMeta], settings: ScoringSettings
) -> _Evidence:
    evidence = _Evidence()
    # A fixed order makes the outcome independent of the order of ``results``
    # when one source has several results.
    for result in sorted(results, key=_order_key):
        meta = metas.get(result.source)
        if meta is None:
            evidence.unregistered.add(result.source)
        elif meta.kind is SourceKind.CONTEXT:
            continue
        elif result.status is not Status.OK:
            evidence.failures[result.source] = _failure_text(result)
        else:
            evidence.answered.add(result.source)
            _sort_answer(result, meta, source_weight(result.source, metas, settings), evidence)
    # A source that answered once is not also listed as failed.
    for source in set(evidence.failures) & evidence.answered:
        del evidence.failures[source]
    return evidence


def _order_key(result: SourceResult) -> tuple[object, ...]:
    return (
        result.source,
        result.status.value,
        result.flagged,
        result.found,
        result.benign,
        result.confidence,
        result.summary,
        result.categories,
        result.error or "",
    )


def _sort_answer(result: SourceResult, meta: SourceMeta, weight: float, into: _Evidence) -> None:
    source = result.source
    is_hint = result.benign or (meta.benign_only and (result.found or result.flagged))
    if is_hint:
        into.hints[source] = result.summary or "listed as benign"
    elif result.flagged:
        flag = _flag(result, weight)
        if flag.evidence <= 0:
            into.muted.add(source)
        elif source not in into.flags or into.flags[source].evidence < flag.evidence:
            into.flags[source] = flag
    elif result.found and meta.kind is SourceKind.API:
        # A feed that does not list an indicator has not checked it; only an
        # API that knows the indicator and does not flag it gives a clean answer.
        into.clean[source] = result.summary or "known, not flagged"
    elif result.found:
        into.listed[source] = result.summary or "listed"


def _flag(result: SourceResult, weight: float) -> Flag:
    confidence = min(100, max(0, result.confidence))
    stated = confidence > 0
    if not stated:
        confidence = UNSTATED_CONFIDENCE
    if result.summary:
        description = result.summary
    elif result.categories:
        description = "flagged as " + ", ".join(result.categories)
    else:
        description = "flagged"
    return Flag(
        source=result.source,
        weight=weight,
        confidence=confidence,
        stated=stated,
        evidence=weight * confidence / 100,
        description=description,
    )


def _noisy_or(pieces: Iterable[float]) -> int:
    """Combine evidence as independent chances: 1 - prod(1 - e), scaled to 0-100."""
    doubt = 1.0
    for piece in pieces:
        doubt *= 1.0 - piece
    # Round half up (round() rounds half to even), so 72.5 becomes 73.
    return min(100, max(0, math.floor((1.0 - doubt) * 100 + 0.5)))


def _apply_rules(
    score: int, flags: Sequence[Flag], evidence: _Evidence, settings: ScoringSettings
) -> tuple[int, list[str]]:
    """Cap the score by the benign-hint and corroboration rules; return it and the notes."""
    notes: list[str] = []
    strong = [flag for flag in flags if flag.weight >= settings.strong_weight]
    below_suspicious = settings.suspicious_threshold - 1
    below_malicious = settings.malicious_threshold - 1

    if evidence.hints and flags and not strong:
        score = min(score, below_suspicious)
        notes.append(
            f"benign hint outweighs flags from weak sources (weight below "
            f"{settings.strong_weight:g}), so the score stays at {below_suspicious} or less"
        )
    elif evidence.hints and len(strong) == 1 and score > below_malicious:
        # Shared infrastructure (cloud, CDN, resolvers) is not malicious on one
        # source's word, however strong; a second strong source can still make it so.
        score = below_malicious
        notes.append(
            f"benign hint limits the verdict to suspicious while only one strong source "
            f"flags it: score capped at {below_malicious}"
        )

    decisive = any(flag.confidence >= HIGH_CONFIDENCE for flag in strong)
    if not decisive and len(flags) < 2 and score > below_malicious:
        score = below_malicious
        notes.append(
            f"malicious needs a strong source (weight {settings.strong_weight:g} or more) "
            f"with confidence {HIGH_CONFIDENCE} or more, or two flagging sources: "
            f"score capped at {below_malicious}"
        )
    return score, notes


def _verdict(
    score: int, flags: Sequence[Flag], evidence: _Evidence, settings: ScoringSettings
) -> Verdict:
    if score >= settings.malicious_threshold:
        return Verdict.MALICIOUS
    if score >= settings.suspicious_threshold:
        return Verdict.SUSPICIOUS
    if evidence.hints:
        return Verdict.BENIGN
    if evidence.clean and not flags:
        return Verdict.BENIGN
    # Flags too weak for the suspicious band, or only listings without a
    # judgement: some data exists, but not enough for a verdict.
    return Verdict.UNKNOWN


def _failure_text(result: SourceResult) -> str:
    word = _STATUS_WORDS.get(result.status, result.status.value)
    detail = result.error or result.summary
    # Errors built from SourceError already start with "<source>: ".
    prefix = f"{result.source}: "
    if detail.startswith(prefix):
        detail = detail[len(prefix) :]
    return f"{word} ({detail})" if detail else word


def _minor_reasons(evidence: _Evidence) -> list[str]:
    """Lines for answers that carry no judgement, then failures and unknown sources."""
    lines = [f"{source}: {text} (no judgement)" for source, text in sorted(evidence.listed.items())]
    lines += [f"{source}: flagged, but its weight is 0" for source in sorted(evidence.muted)]
    lines += [f"{source}: {text}" for source, text in sorted(evidence.failures.items())]
    lines += [
        f"{source}: not a registered source, ignored" for source in sorted(evidence.unregistered)
    ]
    return lines


def _no_data_reasons(evidence: _Evidence) -> tuple[str, ...]:
    failed = len(evidence.failures)
    if evidence.answered and failed:
        headline = f"no source that answered had a judgement on it, and {failed} could not answer"
    elif evidence.answered:
        headline = f"no source had a judgement on it ({len(evidence.answered)} answered)"
    elif failed:
        headline = "no source answered, so nothing is known about it"
    else:
        headline = "no source was asked"
    return (headline, *_minor_reasons(evidence))
