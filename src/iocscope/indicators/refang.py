"""Undo the common ways analysts defang indicators so they can be parsed.

Reports and tickets write ``hxxps://evil[.]example/`` so that nobody clicks or
resolves an indicator by accident. ``refang`` turns such text back into the
plain form. It only rewrites marked-up separators and scheme spellings, so a
plain indicator passes through unchanged.
"""

from __future__ import annotations

import re

# Defanged scheme spellings and the scheme they stand for. A spelling is only
# rewritten when a colon follows, possibly inside brackets (``hxxp[:]//``), so
# the same letters elsewhere in a URL are left alone.
_SCHEMES = {
    "hxxp": "http",
    "hxxps": "https",
    "hxtp": "http",
    "hxtps": "https",
    "fxp": "ftp",
    "fxps": "ftps",
    "sfxp": "sftp",
}
_SCHEME_RE = re.compile(
    r"\b(" + "|".join(sorted(_SCHEMES, key=len, reverse=True)) + r")(?=[\[({]?:)",
    re.IGNORECASE,
)

# A separator wrapped in brackets, parentheses or braces, with optional spaces
# inside: ``[.]``, ``( dot )``, ``{at}``, ``[://]``, ``[:]``. The alternatives
# are listed longest first so that ``[://]`` is not read as ``[:`` plus rest.
# ``[::]`` is not matched, so a bracketed IPv6 address stays intact.
_WRAPPED_RE = re.compile(
    r"[\[({][ \t]*(://|//|:|/|\.|@|dot|at)[ \t]*[\])}]",
    re.IGNORECASE,
)
# Some reports put spaces around the marker, as in ``example [dot] com``.
# Those spaces belong to the marker, not to the value.
_SPACED_WORD_RE = re.compile(
    r"[ \t]+([\[({][ \t]*(?:dot|at|\.|@)[ \t]*[\])}])[ \t]+", re.IGNORECASE
)
_WORDS = {"dot": ".", "at": "@"}

# A backslash before a dot, as in ``example\.com``, comes from regex-style
# defanging.
_ESCAPED_DOT = "\\."

# Each pass only shortens the text or rewrites a defanged scheme into a real
# one, so the loop ends. The bound guards against a mistake in that reasoning.
_MAX_PASSES = 16


def refang(text: str) -> str:
    """Return ``text`` with defanged schemes and separators restored.

    The result is stable: ``refang(refang(text)) == refang(text)``, also for
    nested markers such as ``[[.]]``.
    """
    for _ in range(_MAX_PASSES):
        restored = _refang_once(text)
        if restored == text:
            return restored
        text = restored
    return text


def _refang_once(text: str) -> str:
    text = _SCHEME_RE.sub(lambda match: _SCHEMES[match.group(1).lower()], text)
    text = _SPACED_WORD_RE.sub(lambda match: match.group(1), text)
    text = _WRAPPED_RE.sub(_unwrap, text)
    return text.replace(_ESCAPED_DOT, ".")


def _unwrap(match: re.Match[str]) -> str:
    separator = match.group(1)
    return _WORDS.get(separator.lower(), separator)
