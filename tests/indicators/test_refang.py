"""Tests of refang: defanged schemes and separators become plain text again."""

from __future__ import annotations

import pytest

from iocscope.indicators.refang import refang


@pytest.mark.parametrize(
    ("defanged", "expected"),
    [
        ("hxxp://example.com/", "http://example.com/"),
        ("hxxps://example.com/", "https://example.com/"),
        ("HXXPS://example.com/", "https://example.com/"),
        ("hXXp://example.com/", "http://example.com/"),
        ("hxtps://example.com/", "https://example.com/"),
        ("fxp://ftp.example.com", "ftp://ftp.example.com"),
        ("sfxp://files.example.com", "sftp://files.example.com"),
        ("hxxp[://]example.com", "http://example.com"),
        ("hxxps[:]//example.com", "https://example.com"),
        ("http(:)//example.com", "http://example.com"),
        ("example[.]com", "example.com"),
        ("example(.)com", "example.com"),
        ("example{.}com", "example.com"),
        ("example[dot]com", "example.com"),
        ("example(dot)com", "example.com"),
        ("example{dot}com", "example.com"),
        ("example[DOT]com", "example.com"),
        ("example[ . ]com", "example.com"),
        ("example [dot] com", "example.com"),
        ("example\\.com", "example.com"),
        ("198[.]51[.]100[.]23", "198.51.100.23"),
        ("alice[at]example[.]org", "alice@example.org"),
        ("alice(at)example.org", "alice@example.org"),
        ("alice[@]example.org", "alice@example.org"),
        ("alice [at] example.org", "alice@example.org"),
        ("2001[:]db8[:][:]1", "2001:db8::1"),
        ("hxxps://malicious[.]example[.]com/dl/a.exe", "https://malicious.example.com/dl/a.exe"),
        ("example[[.]]com", "example.com"),
    ],
)
def test_refang_restores(defanged: str, expected: str) -> None:
    assert refang(defanged) == expected


@pytest.mark.parametrize(
    "plain",
    [
        "https://example.com/a?b=c",
        "198.51.100.23",
        "[2001:db8::1]:443",
        "[::]:80",
        "http://[::1]/",
        "3395856ce81f2b7382dee72602f798b642f14140",
        "hxxp",
        "https://example.com/hxxp-guide",
        "ahxxp://example.com",
        "",
    ],
)
def test_refang_keeps_plain_text(plain: str) -> None:
    assert refang(plain) == plain


def test_refang_is_stable() -> None:
    once = refang("hxxp[:]//a[[.]]b[.]c")
    assert once == "http://a.b.c"
    assert refang(once) == once
