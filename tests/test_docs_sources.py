"""docs/sources.md lists every registered source with the facts the registry holds.

The table is written by hand; this test keeps it from drifting. On a
mismatch the assertion shows the row the registry expects, ready to paste.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iocscope.sources.contract import SourceMeta
from iocscope.sources.feeds.catalogue import FEEDS_BY_NAME
from iocscope.sources.registry import catalogue

DOC = Path(__file__).resolve().parents[1] / "docs" / "sources.md"
# Columns compared with the registry: source, kind, types, key, rate, budget, weight.
CHECKED = 7
KEY_WORDS = ("required", "optional", "none")
COMMERCIAL_WORDS = ("yes", "no", "see terms", "your data")


def table_rows() -> dict[str, list[str]]:
    """Return the cells of every table row whose first cell is a source name in backticks."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 10:
            rows[cells[0].strip("`")] = cells
    return rows


def number(value: float | None) -> str:
    return "no limit" if value is None else f"{value:g}"


def expected_cells(meta: SourceMeta, key: str) -> list[str]:
    return [
        f"`{meta.name}`",
        meta.kind.value,
        ", ".join(sorted(kind.value for kind in meta.types)),
        key,
        number(meta.rate_per_minute),
        number(meta.daily_budget),
        f"{meta.weight:g}",
    ]


METAS = [entry.meta for entry in catalogue()]


def test_every_row_is_a_source() -> None:
    assert set(table_rows()) == {meta.name for meta in METAS}


@pytest.mark.parametrize("meta", METAS, ids=lambda meta: meta.name)
def test_row_matches_registry(meta: SourceMeta) -> None:
    cells = table_rows().get(meta.name)
    assert cells is not None, f"docs/sources.md has no row for {meta.name}"
    key = cells[3]
    assert key in KEY_WORDS
    assert (key == "required") is meta.needs_key
    expected = expected_cells(meta, key)
    assert cells[:CHECKED] == expected, "expected: | " + " | ".join(expected) + " |"
    assert cells[7] in COMMERCIAL_WORDS
    if meta.reference:
        assert meta.reference in cells[9]


@pytest.mark.parametrize("name", sorted(FEEDS_BY_NAME))
def test_feed_terms_match_catalogue(name: str) -> None:
    feed = FEEDS_BY_NAME[name]
    cells = table_rows()[feed.name]
    assert cells[3] == "none"
    assert cells[7] == ("yes" if feed.commercial_use_restricted else "no")
    assert cells[8] == feed.licence.replace("|", "/")


def test_key_variables_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for meta in METAS:
        if meta.needs_key or table_rows()[meta.name][3] == "optional":
            assert f"IOCSCOPE_{meta.name.upper()}_API_KEY" in text
    assert "IOCSCOPE_ABUSECH_API_KEY" in text
