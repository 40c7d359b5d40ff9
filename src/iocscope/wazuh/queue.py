"""Writing events to analysisd's queue socket, and keeping them while it is away.

analysisd reads ``<queue id>:<location>:<message>`` datagrams from the Unix
datagram socket ``queue/sockets/queue``. Events that belong to an agent's
alert carry the agent header ``[<id>] (<name>) <ip>-><location>``, so Wazuh
files them under that agent. Wazuh's own VirusTotal integration does the same
(integrations/virustotal.py, 4.x), and the manager's events use the plain
location. iocscope's location is always ``iocscope``, as VirusTotal's is
``virustotal``, so its alerts show ``"location": "iocscope"`` and are easy to
tell apart from the log line that caused them.

Since Wazuh 4.4.0, analysisd takes the first ``:`` not escaped by ``|`` as
the end of the location and then unescapes ``||`` and ``|:``
(src/shared/string_op.c, ``wstr_chr_escape`` and ``wstr_unescape``). Wazuh
4.4.0 also made its VirusTotal integration escape IPv6 agent addresses. The
whole location, agent part included, is escaped here, so an IPv6 agent
address keeps its colons. Locations without ``|`` or ``:`` read the same on
older 4.x managers.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import re
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iocscope.errors import AlertError
from iocscope.wazuh.events import fit_event

logger = logging.getLogger(__name__)

LOCATION = "iocscope"
QUEUE_ID = "1"  # LOCALFILE_MQ: the queue Wazuh's integrations write to
MANAGER_AGENT_ID = "000"

# analysisd receives at most OS_MAXSTR - 1 = 65,535 bytes per datagram and
# silently cuts the rest. iocscope keeps every message within a smaller
# budget, so the limit is never approached.
MAX_DATAGRAM_BYTES = 65_535
MAX_MESSAGE_BYTES = 65_000

# The directory under the data directory that keeps events while analysisd is
# away. Events can name internal hosts, so only the daemon's user may read it.
SPILL_DIR_NAME = "queue-buffer"
SPILL_DIR_MODE = 0o700
SPILL_FILE_MODE = 0o600

# Error messages quote at most this many characters of a forged agent value.
QUOTED_VALUE_LENGTH = 80

# Wazuh agent names contain letters, digits, "-", "_" and "." only, because
# authd rejects other names. Anything else cannot come from a real alert and
# could break the header.
_AGENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
_AGENT_ID = re.compile(r"[0-9]{3,8}")

# Errors that mean "analysisd is not reading right now" (manager stopped or
# restarting, socket queue full): the message is kept and retried.
_RETRY_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ECONNREFUSED,
        errno.ENOTCONN,
        errno.ENOBUFS,
        errno.EAGAIN,
        errno.EWOULDBLOCK,
        errno.EPIPE,
        errno.EACCES,
    }
)


def escape_location(text: str) -> str:
    """Escape ``|`` and ``:`` the way analysisd unescapes a location."""
    return text.replace("|", "||").replace(":", "|:")


def format_header(alert: Mapping[str, Any], *, location: str = LOCATION) -> str:
    """Return the queue header, up to and including the ``:`` before the event.

    Agent alerts get ``1:[<id>] (<name>) <ip or any>-><location>:`` and
    manager alerts (agent 000, or no agent) ``1:<location>:``. Raises
    ``AlertError`` when the agent ID, name or IP cannot be a Wazuh agent's.
    """
    agent = alert.get("agent")
    agent = agent if isinstance(agent, Mapping) else {}
    agent_id = str(agent.get("id", MANAGER_AGENT_ID))
    if agent_id == MANAGER_AGENT_ID:
        return f"{QUEUE_ID}:{escape_location(location)}:"
    if not _AGENT_ID.fullmatch(agent_id):
        raise AlertError(f"invalid agent ID {_quote(agent_id)} in alert: expected 3 to 8 digits")
    name = str(agent.get("name", ""))
    if not _AGENT_NAME.fullmatch(name):
        raise AlertError(
            f"invalid agent name {_quote(name)} in alert: expected letters, digits, '-', '_' or '.'"
        )
    address = _agent_address(agent.get("ip"))
    full = f"[{agent_id}] ({name}) {address}->{location}"
    return f"{QUEUE_ID}:{escape_location(full)}:"


def build_message(alert: Mapping[str, Any], event: Mapping[str, Any]) -> bytes:
    """Return header plus event, shortened to fit ``MAX_MESSAGE_BYTES``."""
    header = format_header(alert).encode("utf-8")
    return header + fit_event(event, MAX_MESSAGE_BYTES - len(header))


def _quote(value: str) -> str:
    """Return ``repr(value)``, cut to ``QUOTED_VALUE_LENGTH`` characters with a marker.

    A forged agent field can be kilobytes long; the log needs only its start.
    """
    if len(value) <= QUOTED_VALUE_LENGTH:
        return repr(value)
    return f"{value[:QUOTED_VALUE_LENGTH]!r}... ({len(value)} characters)"


def _agent_address(value: object) -> str:
    if value in (None, "", "any"):
        return "any"
    text = str(value)
    try:
        # Agents registered with a network ("10.0.0.0/24") carry it as their IP.
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise AlertError(
            f"invalid agent IP {_quote(text)} in alert: expected an address or 'any'"
        ) from None
    return text


@dataclass
class QueueStats:
    """Counters of one writer. ``dropped`` stays 0 unless memory-only buffering overflowed."""

    sent: int = 0
    buffered: int = 0
    spilled: int = 0
    dropped: int = 0
    oversized: int = 0


class QueueWriter:
    """Sends datagrams to analysisd in order, buffering them while it is away.

    A message that cannot be sent (socket missing, no reader, queue full)
    is kept, and every later message queues behind it, so events arrive in
    the order they were given. With ``spill_dir``, kept messages are written
    there at once (one fsynced file each), so a crash or restart of iocscope
    loses none; files left by an earlier run are sent first. Without it, up to
    ``buffer_limit`` messages are kept in memory and further ones are dropped
    and counted. ``send`` blocks for at most ``send_timeout`` seconds. The
    spill directory is created with mode 0700 and its files with 0600.
    """

    def __init__(
        self,
        socket_path: Path,
        *,
        buffer_limit: int = 10_000,
        spill_dir: Path | None = None,
        send_timeout: float = 1.0,
    ) -> None:
        self._path = socket_path
        self._buffer_limit = buffer_limit
        self._spill_dir = spill_dir
        self._send_timeout = send_timeout
        self._socket: socket.socket | None = None
        self._memory: deque[bytes] = deque()
        self._files: deque[Path] = deque()
        self._next_file = 0
        self._available = True
        self.stats = QueueStats()
        if spill_dir is not None:
            self._load_spilled(spill_dir)

    def __enter__(self) -> QueueWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def socket_path(self) -> Path:
        """The analysisd queue socket this writer sends to."""
        return self._path

    @property
    def pending(self) -> int:
        """Number of messages waiting for the socket."""
        return len(self._memory) + len(self._files)

    def send(self, message: bytes) -> bool:
        """Send one message, or keep it for later; return True when it was sent now.

        A message over ``MAX_DATAGRAM_BYTES`` is rejected (logged, counted in
        ``oversized``, never sent), because analysisd would cut it silently.
        """
        if len(message) > MAX_DATAGRAM_BYTES:
            self.stats.oversized += 1
            logger.error(
                "event of %d bytes rejected: over the %d-byte queue limit",
                len(message),
                MAX_DATAGRAM_BYTES,
            )
            return False
        if not self.pending and self._try_send(message):
            return True
        self._keep(message)
        self.flush()
        return False

    def flush(self) -> int:
        """Send kept messages in order until one fails; return how many were sent."""
        count = 0
        while self._memory:
            if not self._try_send(self._memory[0]):
                return count
            self._memory.popleft()
            count += 1
        while self._files:
            path = self._files[0]
            if not self._try_send(path.read_bytes()):
                return count
            path.unlink()
            self._files.popleft()
            count += 1
        return count

    def close(self) -> None:
        """Close the socket; messages still in memory are lost and counted as dropped."""
        if self._memory:
            logger.error("%d events not delivered to analysisd were lost", len(self._memory))
            self.stats.dropped += len(self._memory)
            self._memory.clear()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def stats_dict(self) -> dict[str, int]:
        """Return the counters and the number of pending messages."""
        return {**asdict(self.stats), "pending": self.pending}

    def _try_send(self, message: bytes) -> bool:
        try:
            if self._socket is None:
                self._socket = self._connect()
            self._socket.send(message)
        except OSError as exc:
            self._disconnect(exc)
            return False
        self.stats.sent += 1
        if not self._available:
            self._available = True
            logger.info("analysisd socket %s is back; sending kept events", self._path)
        return True

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(self._send_timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self, exc: OSError) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._available:
            # One line per outage, not one per event.
            self._available = False
            level = logging.WARNING if _is_retryable(exc) else logging.ERROR
            logger.log(
                level, "analysisd socket %s unavailable (%s); keeping events", self._path, exc
            )

    def _keep(self, message: bytes) -> None:
        self.stats.buffered += 1
        if self._spill_dir is not None:
            self._spill(self._spill_dir, message)
            return
        if len(self._memory) >= self._buffer_limit:
            self.stats.dropped += 1
            logger.error("event dropped: %d events already kept in memory", len(self._memory))
            return
        self._memory.append(message)

    def _spill(self, directory: Path, message: bytes) -> None:
        _make_private_dir(directory)
        final = directory / f"{self._next_file:020d}.msg"
        temporary = directory / f"{self._next_file:020d}.tmp"
        self._next_file += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(temporary, flags, SPILL_FILE_MODE), "wb") as handle:
            os.fchmod(handle.fileno(), SPILL_FILE_MODE)  # a file left by an older run may be 0644
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.rename(final)
        self._files.append(final)
        self.stats.spilled += 1

    def _load_spilled(self, directory: Path) -> None:
        if not directory.is_dir():
            return
        for stale in directory.glob("*.tmp"):
            # A write that never reached its rename: the daemon still had the
            # event in its spool or journal, so nothing is lost here.
            stale.unlink()
        files = sorted(directory.glob("*.msg"))
        self._files.extend(files)
        if files:
            self._next_file = int(files[-1].stem) + 1
            logger.info("%d kept events from an earlier run will be sent first", len(files))


def _make_private_dir(directory: Path) -> None:
    """Create ``directory`` with mode 0700, or take group and other access off an existing one."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=SPILL_DIR_MODE)
    except FileExistsError:
        # An older iocscope created it with the umask's mode, often 0755.
        if directory.stat().st_mode & 0o077 == 0:
            return
    directory.chmod(SPILL_DIR_MODE)  # mkdir applies the umask


def _is_retryable(exc: OSError) -> bool:
    return isinstance(exc, TimeoutError) or exc.errno in _RETRY_ERRNOS
