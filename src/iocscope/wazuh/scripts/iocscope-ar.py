"""Hand the alert of a Wazuh active response to the iocscope spool, then exit.

wazuh-execd (Wazuh 4.2 and later) runs this script with one JSON message on
standard input::

    {"version": 1, "origin": {...}, "command": "add" | "delete",
     "parameters": {"extra_args": [...], "alert": {...}, "program": "..."}}

For ``add`` the script sends execd the check_keys request, keyed by the
alert's source IP or else its id. When execd replies ``continue``, it writes
``parameters.alert`` into the spool as kind ``ar``. The daemon enriches such
alerts whatever their level or groups, because a rule requested it. ``delete`` has
nothing to undo and is acknowledged in the log only. Run it on the manager
(``<location>server</location>``), where the spool is.

Standard library only: the script runs under Wazuh's bundled Python (3.9 in
Wazuh 4.2 to 4.7, 3.10 from 4.8) or any python3 from 3.9 on.

Exit codes:

    0  EXIT_OK               spooled, aborted by execd, a delete, or an alert
                             dropped by the loop guard
    2  EXIT_INVALID_INPUT    standard input is not an active-response message
    3  EXIT_HANDSHAKE_FAILED execd's reply to check_keys is missing or invalid
    5  EXIT_SPOOL_FAILED     the spool file cannot be written; the alert is lost

Every run appends lines to ``<wazuh_dir>/logs/active-responses.log`` in the
format of Wazuh's own active-response programs (``write_debug_file`` in
src/active-response/active_responses.c, 4.2): local time
``YYYY/MM/DD HH:MM:SS``, the program path, a colon and the message. The
lines name the alert id, never the alert content.
"""

from __future__ import annotations

import json
import os
import sys
import time

# The name Wazuh's own programs log under: their path below the Wazuh directory.
PROGRAM = "active-response/bin/iocscope-ar"

EXIT_OK = 0
EXIT_INVALID_INPUT = 2
EXIT_HANDSHAKE_FAILED = 3
EXIT_SPOOL_FAILED = 5

PROTOCOL_VERSION = 1
COMMAND_ADD = "add"
COMMAND_DELETE = "delete"
COMMAND_CHECK_KEYS = "check_keys"
COMMAND_CONTINUE = "continue"
COMMAND_ABORT = "abort"
KEY_FIELD = "srcip"  # under the alert's "data"; the alert id when absent

# The spool layout, shared with iocscope.wazuh.spool and the forwarder; a
# test checks that the three agree.
SPOOL_ENV = "IOCSCOPE_SPOOL_DIR"
SPOOL_DEFAULT = ("var", "iocscope", "spool")  # under the Wazuh directory
SPOOL_TMP = "tmp"
SPOOL_NEW = "new"
SPOOL_DIR_MODE = 0o770  # the wazuh group writes, the daemon's user reads and deletes
SPOOL_FILE_MODE = 0o640
SPOOL_KIND = "ar"
SPOOL_NAME_FORMAT = "{time_ns}.{pid}.{random}.{kind}.json"

LOG_FILE = ("logs", "active-responses.log")  # under the Wazuh directory
# Alert ids are short ("1714557600.1000"); a longer value is cut in log lines.
LOGGED_VALUE_LENGTH = 80

# iocscope's own events and alerts about active-response runs are never
# enriched again, or blocks and enrichments would feed each other. An own
# event has the location "iocscope" (iocscope.wazuh.queue.LOCATION) and the
# marker "iocscope" in data.integration or as the key data.iocscope. The
# marker alone can come from a log line. So can the rule group "iocscope",
# because iocscope's rules match on data.integration.
OWN_INTEGRATION = "iocscope"
OWN_LOCATION = "iocscope"
SKIPPED_GROUPS = ("active_response",)


class InvalidMessageError(ValueError):
    """A line on standard input is not the message this script expects."""


class ArLog:
    """Appends lines to active-responses.log; a log failure never stops the run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        try:
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(f"{stamp} {PROGRAM}: {message}\n")
        except OSError:
            pass


def loggable(value: object) -> str:
    """Return ``value`` as one short printable line, safe to put in a log."""
    text = str(value)[:LOGGED_VALUE_LENGTH]
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def wazuh_dir() -> str:
    """Return the Wazuh directory: two levels above active-response/bin/."""
    bin_dir = os.path.dirname(os.path.realpath(__file__))
    return os.path.dirname(os.path.dirname(bin_dir))


def parse_message(line: bytes) -> tuple[str, dict[str, object]]:
    """Return the command and the alert of an execd message, or raise InvalidMessageError."""
    if not line.strip():
        raise InvalidMessageError("no message on standard input")
    try:
        message = json.loads(line, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidMessageError(f"not JSON ({exc})") from exc
    if not isinstance(message, dict):
        raise InvalidMessageError("not a JSON object")
    command = message.get("command")
    if not isinstance(command, str):
        raise InvalidMessageError("no command")
    parameters = message.get("parameters")
    alert = parameters.get("alert") if isinstance(parameters, dict) else None
    if not isinstance(alert, dict):
        raise InvalidMessageError("no parameters.alert object")
    return command, alert


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity, but they are not JSON (RFC 8259)
    # and the daemon's parser rejects them.
    raise ValueError(f"{name} is not a JSON value")


def is_own_event(alert: dict[str, object]) -> bool:
    """Return True for iocscope's own events and for active-response alerts.

    An own event has the location ``iocscope`` (the daemon sends every event
    under it) and the iocscope marker in ``data``. The marker alone is not
    enough, because a log line can decode into ``data.integration``.
    """
    data = alert.get("data")
    marked = isinstance(data, dict) and (
        data.get("integration") == OWN_INTEGRATION or OWN_INTEGRATION in data
    )
    if marked and alert.get("location") == OWN_LOCATION:
        return True
    rule = alert.get("rule")
    groups = rule.get("groups") if isinstance(rule, dict) else None
    if isinstance(groups, list):
        return any(group in SKIPPED_GROUPS for group in groups)
    return False


def handshake_keys(alert: dict[str, object]) -> list[str]:
    """Return the keys execd uses to recognise a repeated response to the same thing."""
    data = alert.get("data")
    key = data.get(KEY_FIELD) if isinstance(data, dict) else None
    if not isinstance(key, str) or not key:
        key = alert.get("id")
    return [key] if isinstance(key, str) and key else []


def check_keys(keys: list[str]) -> str:
    """Send check_keys to execd and return the command of its reply: continue or abort.

    Raises InvalidMessageError when the reply is missing or has another command.
    """
    request = {
        "version": PROTOCOL_VERSION,
        "origin": {"name": PROGRAM, "module": "active-response"},
        "command": COMMAND_CHECK_KEYS,
        "parameters": {"keys": keys},
    }
    sys.stdout.write(json.dumps(request) + "\n")
    sys.stdout.flush()
    line = sys.stdin.buffer.readline()
    if not line:
        raise InvalidMessageError("no reply to check_keys")
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise InvalidMessageError(f"reply to check_keys is not JSON ({exc})") from exc
    command = reply.get("command") if isinstance(reply, dict) else None
    if command not in (COMMAND_CONTINUE, COMMAND_ABORT):
        raise InvalidMessageError(f"reply to check_keys has command {loggable(repr(command))}")
    return str(command)


def spool_dir(base: str) -> str:
    """Choose the spool: IOCSCOPE_SPOOL_DIR, else the default under the Wazuh directory."""
    return os.environ.get(SPOOL_ENV, "") or os.path.join(base, *SPOOL_DEFAULT)


def write_spool_file(directory: str, payload: bytes, kind: str) -> str:
    """Write ``payload`` to ``<directory>/new/`` through ``tmp/`` and return its name.

    The file is complete and synced to disk before the rename makes it
    visible, so the daemon never reads a partial alert. Missing spool
    directories are created.
    """
    name = SPOOL_NAME_FORMAT.format(
        time_ns=time.time_ns(), pid=os.getpid(), random=os.urandom(4).hex(), kind=kind
    )
    tmp_path = os.path.join(directory, SPOOL_TMP, name)
    new_path = os.path.join(directory, SPOOL_NEW, name)
    try:
        fd = _create(tmp_path)
    except FileNotFoundError:
        _make_spool_dirs(directory)
        fd = _create(tmp_path)
    try:
        _write_all(fd, payload)
    except OSError:
        os.close(fd)
        os.unlink(tmp_path)  # if this fails too, the daemon removes stale tmp files
        raise
    os.close(fd)
    try:
        os.rename(tmp_path, new_path)
    except FileNotFoundError:
        _make_spool_dirs(directory)
        os.rename(tmp_path, new_path)
    _fsync_dir(os.path.dirname(new_path))
    return name


def _create(path: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, SPOOL_FILE_MODE)


def _write_all(fd: int, payload: bytes) -> None:
    os.fchmod(fd, SPOOL_FILE_MODE)  # the umask may have cleared the group read bit
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def _make_spool_dirs(directory: str) -> None:
    parent = os.path.dirname(directory)
    if parent:
        os.makedirs(parent, exist_ok=True)
    for path in (directory, os.path.join(directory, SPOOL_TMP), os.path.join(directory, SPOOL_NEW)):
        try:
            os.mkdir(path, SPOOL_DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(path, SPOOL_DIR_MODE)  # mkdir applies the umask


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main() -> int:
    """Run one active response and return the exit code."""
    base = wazuh_dir()
    log = ArLog(os.path.join(base, *LOG_FILE))
    log.write("Starting")
    try:
        command, alert = parse_message(sys.stdin.buffer.readline())
    except InvalidMessageError as exc:
        log.write(f"Invalid input format: {exc}")
        return EXIT_INVALID_INPUT
    alert_id = loggable(alert.get("id"))
    if command == COMMAND_DELETE:
        log.write(f"Ignored delete for alert {alert_id}: there is nothing to undo")
        return EXIT_OK
    if command != COMMAND_ADD:
        log.write(f"Invalid command {loggable(repr(command))}: expected add or delete")
        return EXIT_INVALID_INPUT
    if is_own_event(alert):
        log.write(f"Dropped alert {alert_id}: iocscope's own event or an active response")
        return EXIT_OK
    return _add(alert, alert_id, base, log)


def _add(alert: dict[str, object], alert_id: str, base: str, log: ArLog) -> int:
    keys = handshake_keys(alert)
    if keys:
        try:
            decision = check_keys(keys)
        except InvalidMessageError as exc:
            log.write(f"Handshake failed for alert {alert_id}: {exc}")
            return EXIT_HANDSHAKE_FAILED
        if decision == COMMAND_ABORT:
            log.write(f"Aborted by execd for alert {alert_id}")
            return EXIT_OK
    # ASCII escapes keep the file valid UTF-8 even for lone surrogates in the input.
    payload = json.dumps(alert, separators=(",", ":")).encode("ascii")
    directory = spool_dir(base)
    try:
        name = write_spool_file(directory, payload, SPOOL_KIND)
    except OSError as exc:
        log.write(f"Alert {alert_id} not spooled in {directory}: {exc.strerror}")
        return EXIT_SPOOL_FAILED
    log.write(f"Alert {alert_id} spooled as {name}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
