"""Paths into the shared corpus next to the repository, with clear skips."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "corpus"
CASES = SHARED / "cases" / "public-bug-cases.jsonl"


def corpus_path(*parts: str) -> Path:
    """Return a path under the shared corpus, skipping the test when it is absent."""
    path = CORPUS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared corpus file {path} is absent; it lives beside the repository")
    return path


def cases_of(family: str) -> list[dict[str, Any]]:
    """Return the public bug cases of one family, or [] when the file is absent.

    Safe at collection time: a parametrised test over an empty list is
    reported as skipped with "got empty parameter set".
    """
    if not CASES.exists():
        return []
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line]
    return [case for case in cases if case["family"] == family]
