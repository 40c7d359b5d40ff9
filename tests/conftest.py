"""Suite-wide guard: no test may resolve or reach a host other than this one.

Tests talk to servers they start on 127.0.0.1. A source left enabled by
mistake would otherwise try its provider on the Internet; here its name
lookup fails at once, like on a host without network access, and the
attempt is recorded so the test session fails loudly.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOCAL_NAMES = {"localhost", "localhost.localdomain", ""}
_real_getaddrinfo = socket.getaddrinfo
attempts: list[str] = []


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_local(host):
        test = os.environ.get("PYTEST_CURRENT_TEST", "outside a test")
        attempts.append(f"{host!r} in {test}")
        raise socket.gaierror(socket.EAI_NONAME, f"tests may not resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _only_this_host() -> Iterator[None]:
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.getaddrinfo = _real_getaddrinfo
    assert not attempts, f"tests tried to reach other hosts: {sorted(set(attempts))}"
