"""Remove URL credentials from text that is shown, logged or returned."""

from __future__ import annotations

import re

# The user-information part of a URL, also in defanged forms such as
# hxxps://user:pass@host; the host part starts after the last "@".
_USERINFO = re.compile(r"//[^/?#\s]*@")


def redact_userinfo(text: str) -> str:
    """Replace URL credentials (``//user:password@``) with ``//***@``."""
    return _USERINFO.sub("//***@", text)
