"""Settings: one TOML file, environment variables and secret files.

The file is found in this order: the ``--config`` option, the
``IOCSCOPE_CONFIG`` environment variable, then ``DEFAULT_CONFIG_PATH`` when it
exists. With no file, the embedded defaults apply. Secrets never come from
command-line arguments: an API key is read from the environment variable a
source names (``api_key_env``) or from a file (``api_key_file``).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from iocscope.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/iocscope/iocscope.toml")
CONFIG_ENV = "IOCSCOPE_CONFIG"
DATA_DIR_ENV = "IOCSCOPE_DATA_DIR"
API_KEYS_FILE_NAME = "api-keys.json"


def default_data_dir() -> Path:
    """Return the data directory used when the configuration names none."""
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        return Path(from_env)
    if os.geteuid() == 0:
        return Path("/var/lib/iocscope")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "iocscope"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScopeSettings(_Strict):
    """Which indicators count as internal and never leave the host."""

    internal_domains: tuple[str, ...] = ()
    internal_networks: tuple[str, ...] = ()
    # Ranges treated as public even though they are not (for labs that use
    # documentation or private addresses to simulate attackers).
    public_overrides: tuple[str, ...] = ()


class ScoringSettings(_Strict):
    """Thresholds of the verdict and per-source weight overrides."""

    malicious_threshold: int = Field(default=70, ge=1, le=100)
    suspicious_threshold: int = Field(default=30, ge=1, le=100)
    # A flag from one source whose weight is below this is "weak": alone it
    # can never make an indicator malicious.
    strong_weight: float = Field(default=0.6, ge=0.0, le=1.0)
    weights: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> ScoringSettings:
        if self.suspicious_threshold >= self.malicious_threshold:
            raise ValueError(
                f"suspicious_threshold ({self.suspicious_threshold}) must be lower than "
                f"malicious_threshold ({self.malicious_threshold})"
            )
        return self


class SourceSettings(_Strict):
    """Settings of one source; every field is optional."""

    enabled: bool = True
    api_key_env: str | None = None
    api_key_file: Path | None = None
    base_url: str | None = None
    timeout: float | None = Field(default=None, gt=0, le=120)
    rate_per_minute: float | None = Field(default=None, gt=0)
    daily_budget: int | None = Field(default=None, ge=0)
    # Cache lifetimes in seconds by outcome.
    ttl_found: int | None = Field(default=None, ge=0)
    ttl_not_found: int | None = Field(default=None, ge=0)
    url: str | None = None  # feed download address


class GeoipSettings(_Strict):
    """Paths of MaxMind databases (GeoLite2 or GeoIP2 format)."""

    asn_db: Path | None = None
    city_db: Path | None = None


class AlertSettings(_Strict):
    """Limits applied to each Wazuh alert."""

    max_observables: int = Field(default=32, ge=1, le=1000)


class WazuhSettings(_Strict):
    """Where the Wazuh manager lives and which alerts the daemon enriches."""

    wazuh_dir: Path = Path("/var/ossec")
    # Each path below defaults to its place under wazuh_dir when unset.
    queue_socket: Path | None = None
    spool_dir: Path | None = None
    alerts_json: Path | None = None
    # Follow alerts.json directly instead of (or besides) the integratord spool.
    follow_alerts: bool = False
    min_level: int = Field(default=3, ge=0, le=16)
    groups: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    # Observables that are not public are never enriched; emit no event for them.
    emit_not_public: bool = False
    # Put a malicious source address also in a top-level "srcip", which Wazuh
    # decodes as data.srcip, the field the stock firewall-drop script reads.
    # Off by default: static fields are what the rules file avoids.
    srcip_for_active_response: bool = False
    poll_interval: float = Field(default=0.5, gt=0, le=60)

    def queue_socket_path(self) -> Path:
        return self.queue_socket or self.wazuh_dir / "queue" / "sockets" / "queue"

    def spool_path(self) -> Path:
        return self.spool_dir or self.wazuh_dir / "var" / "iocscope" / "spool"

    def alerts_json_path(self) -> Path:
        return self.alerts_json or self.wazuh_dir / "logs" / "alerts" / "alerts.json"


class ApiSettings(_Strict):
    """The address ``iocscope serve`` listens on and the limits it applies to each request."""

    # Loopback by default: exposing the service is a decision of the operator.
    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=1, le=65535)
    # Default: <data_dir>/api-keys.json.
    keys_file: Path | None = None
    # Indicators accepted in one batch or lookup request.
    batch_limit: int = Field(default=100, ge=1, le=10_000)
    # Request bodies larger than this many bytes are rejected with 413.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # Browser origins allowed to call the API; empty turns CORS off.
    cors_origins: tuple[str, ...] = ()
    # Requests per minute for each API key, and how many may arrive at once
    # after a quiet period. A key may carry its own rate.
    rate_per_minute: float = Field(default=600.0, gt=0)
    rate_burst: int = Field(default=60, ge=1)

    def keys_path(self, data_dir: Path) -> Path:
        """Return the keys file: the configured path or ``<data_dir>/api-keys.json``."""
        return (self.keys_file or data_dir / API_KEYS_FILE_NAME).expanduser()


class Settings(_Strict):
    """The whole effective configuration."""

    data_dir: Path = Field(default_factory=default_data_dir)
    scope: ScopeSettings = ScopeSettings()
    scoring: ScoringSettings = ScoringSettings()
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    geoip: GeoipSettings = GeoipSettings()
    alerts: AlertSettings = AlertSettings()
    wazuh: WazuhSettings = WazuhSettings()
    api: ApiSettings = ApiSettings()
    # Indicators, CIDR ranges or domains (with their subdomains) that are
    # benign by decision of the operator: no source is asked about them.
    allowlist: tuple[str, ...] = ()
    concurrency: int = Field(default=16, ge=1, le=256)
    # A source that fails this many times in a row is not called for
    # circuit_cooldown seconds (doubling while it keeps failing, up to 15 min).
    circuit_threshold: int = Field(default=5, ge=1, le=1000)
    circuit_cooldown: float = Field(default=60.0, gt=0, le=900)

    @field_validator("data_dir")
    @classmethod
    def _expand_data_dir(cls, value: Path) -> Path:
        return value.expanduser()

    def source(self, name: str) -> SourceSettings:
        """Return the settings of one source, defaults when the file has none."""
        return self.sources.get(name, SourceSettings())


def find_config_path(explicit: Path | None) -> Path | None:
    """Return the configuration file to read, or None for the embedded defaults."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return None


def load_settings(explicit: Path | None = None) -> Settings:
    """Read the configuration file (if any) and validate it."""
    path = find_config_path(explicit)
    if path is None:
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        fix = "fix the --config option" if explicit is not None else f"unset {CONFIG_ENV}"
        raise ConfigError(f"configuration file {path} not found: create it or {fix}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    return settings_from_mapping(raw, origin=str(path))


def settings_from_mapping(raw: dict[str, Any], origin: str = "<mapping>") -> Settings:
    """Validate a parsed configuration; errors name the setting and the problem."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration in {origin}: {problems}") from exc


def resolve_api_key(name: str, settings: SourceSettings) -> SecretStr | None:
    """Return the API key of a source from its file or environment variable.

    The default environment variable is ``IOCSCOPE_<NAME>_API_KEY``. A key
    file must not be readable by other users; the key is the file's first
    line with surrounding white space removed.
    """
    if settings.api_key_file is not None:
        return _read_key_file(name, settings.api_key_file)
    env_name = settings.api_key_env or f"IOCSCOPE_{name.upper()}_API_KEY"
    value = os.environ.get(env_name, "").strip()
    return SecretStr(value) if value else None


def _read_key_file(name: str, path: Path) -> SecretStr:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the API key file {path} of source {name}: {exc.strerror}"
        ) from exc
    if mode & 0o004:
        raise ConfigError(
            f"API key file {path} of source {name} is readable by every user: run chmod 640 {path}"
        )
    lines = text.strip().splitlines()
    key = lines[0].strip() if lines else ""
    if not key:
        raise ConfigError(f"API key file {path} of source {name} is empty")
    return SecretStr(key)
