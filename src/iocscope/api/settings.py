"""Settings of the HTTP service: the ``[api]`` table of the configuration file."""

from __future__ import annotations

from iocscope.config import API_KEYS_FILE_NAME as KEYS_FILE_NAME
from iocscope.config import ApiSettings, Settings

__all__ = ["KEYS_FILE_NAME", "ApiSettings", "api_settings"]


def api_settings(settings: Settings) -> ApiSettings:
    """Return the ``[api]`` settings."""
    return settings.api
