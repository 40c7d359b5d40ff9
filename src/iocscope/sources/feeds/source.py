"""The feed source: one loaded feed behind the common source contract.

A lookup is an in-memory match against the ``FeedStore``, so it costs no
network call. Blocklist hits are flags; allowlist hits (``benign_only``
feeds) are benign hints and never flags.
"""

from __future__ import annotations

from iocscope.errors import SourceUnavailableError
from iocscope.indicators.model import Indicator
from iocscope.sources.contract import SourceKind, SourceMeta, SourceResult, Status
from iocscope.sources.deps import SourceDeps
from iocscope.sources.feeds.catalogue import FeedSpec
from iocscope.sources.feeds.index import FeedMatch
from iocscope.sources.feeds.store import FeedStore

# An in-memory match takes microseconds; this only bounds a stalled event loop.
FEED_TIMEOUT = 1.0

_HOW = {
    "network": "network",
    "parent_domain": "parent domain",
    "url_host": "host",
}


def feed_meta(spec: FeedSpec) -> SourceMeta:
    """Return the source metadata of a feed."""
    return SourceMeta(
        name=spec.name,
        title=spec.title,
        kind=SourceKind.FEED,
        types=spec.types,
        needs_key=False,
        weight=spec.weight,
        timeout=FEED_TIMEOUT,
        reference=spec.reference,
        licence=spec.licence,
        benign_only=spec.benign_only,
        offline=True,
    )


class FeedSource:
    """Matches indicators against one feed loaded in a ``FeedStore``."""

    def __init__(self, spec: FeedSpec, store: FeedStore) -> None:
        self._spec = spec
        self._store = store
        self._meta = feed_meta(spec)

    @property
    def meta(self) -> SourceMeta:
        return self._meta

    async def lookup(self, indicator: Indicator) -> SourceResult:
        """Return whether the feed lists the indicator; an unlisted value is an OK result."""
        spec = self._spec
        if indicator.type not in spec.types:
            return SourceResult(
                source=spec.name,
                status=Status.SKIPPED,
                summary=f"{spec.title} lists no {indicator.type} indicators",
            )
        found = self._store.match(spec.name, indicator)
        if found is None:
            return SourceResult(
                source=spec.name, status=Status.OK, summary=f"not listed by {spec.title}"
            )
        return self._result(found)

    def _result(self, found: FeedMatch) -> SourceResult:
        spec = self._spec
        meta = found.meta
        confidence = meta.confidence if meta.confidence is not None else spec.confidence
        return SourceResult(
            source=spec.name,
            status=Status.OK,
            found=True,
            flagged=not spec.benign_only,
            benign=spec.benign_only,
            confidence=confidence,
            categories=(meta.category or spec.category,),
            tags=meta.tags,
            first_seen=meta.first_seen,
            last_seen=meta.last_seen,
            reference=meta.reference or spec.reference,
            summary=match_summary(spec, found),
            context={"entry": found.entry, "match": found.how},
        )


def match_summary(spec: FeedSpec, found: FeedMatch) -> str:
    """Describe a hit in one line, for example ``listed by 6 of the IPsum blocklists``.

    A detail that starts with ``listed by`` replaces the generic
    ``listed by <feed>`` lead.
    """
    detail = found.meta.detail
    detail_is_lead = detail.startswith("listed by")
    verb = "allowlisted" if spec.benign_only else "listed"
    summary = detail if detail_is_lead else f"{verb} by {spec.title}"
    how = _HOW.get(found.how)
    if how is not None:
        summary += f" ({how} {found.entry})"
    if detail and not detail_is_lead:
        summary += f": {detail}"
    return summary


def create_feed_source(spec: FeedSpec, deps: SourceDeps) -> FeedSource:
    """Build the source of one feed; raises SourceUnavailableError when it is not loaded."""
    if not deps.feeds.loaded(spec.name):
        raise SourceUnavailableError(
            f"feed {spec.name} is not synced: run `iocscope feeds sync` "
            f"or `iocscope feeds import {spec.name} FILE`"
        )
    return FeedSource(spec, deps.feeds)
