"""Hand one Wazuh alert from wazuh-integratord to the iocscope spool, then exit.

wazuh-integratord (Wazuh 4.x) runs this script once per alert, one process at
a time, and waits for it without a timeout. The script therefore does no
enrichment and no network I/O: it reads the alert file, checks that it contains
one JSON object, drops iocscope's own events, and writes the alert into the
spool directory, where the iocscope daemon picks it up. When the daemon is
down, alerts wait in the spool.

Standard library only: the script runs under Wazuh's bundled Python (3.9 in
Wazuh 4.2 to 4.7, 3.10 from 4.8) or any python3 from 3.9 on.

Exit codes (integratord 4.x logs every non-zero status as an error in
ossec.log; what the script prints shows up only at integrator.debug=2):

    0  EXIT_OK             the alert is in the spool
    0  EXIT_OWN_EVENT      an iocscope event or an active-response alert was
                           dropped by the loop guard; this is normal operation,
                           so it must not raise an error in ossec.log
    2  EXIT_BAD_ARGS       no alert file argument
    3  EXIT_ALERT_UNREADABLE  the alert file cannot be read
    4  EXIT_ALERT_INVALID  the alert file is not one UTF-8 JSON object
    5  EXIT_SPOOL_FAILED   the spool file cannot be written; the alert is lost

With ``debug`` as the fourth argument (integratord passes it when
integrator.debug is set in internal_options.conf), the script appends one
line per alert to ``<wazuh_dir>/logs/integrations.log``: the outcome and the
alert id, never the alert content, the API key or the hook URL. A second
line warns when an API key is configured, because iocscope ignores it.
"""

from __future__ import annotations

import os
import sys
import time

SCRIPT_NAME = "custom-iocscope"

EXIT_OK = 0
EXIT_OWN_EVENT = 0
EXIT_BAD_ARGS = 2
EXIT_ALERT_UNREADABLE = 3
EXIT_ALERT_INVALID = 4
EXIT_SPOOL_FAILED = 5

# Argument positions as wazuh-integratord 4.x passes them. Empty values keep
# their positions. integratord builds one command line, appends
# " > /dev/null 2>&1" when debug is off and splits it on spaces into a fixed
# number of pieces without a shell, so the redirect arrives glued to the last
# argument: the debug slot up to 4.6, the retries value from 4.8.
ARG_ALERT_FILE = 1
ARG_API_KEY = 2
ARG_HOOK_URL = 3
ARG_DEBUG = 4
ARG_OPTIONS_FILE = 5  # 4.7 and later; "" when <options> is not configured
ARG_TIMEOUT = 6  # 4.8 and later, seconds
ARG_RETRIES = 7  # 4.8 and later
DEBUG_FLAG = "debug"
# integratord names the options file "<tmp name>.options".
OPTIONS_SUFFIX = "options"

# The spool layout, shared with iocscope.wazuh.spool and the active-response
# script; a test checks that the three agree.
SPOOL_ENV = "IOCSCOPE_SPOOL_DIR"
SPOOL_OPTION = "spool_dir"
SPOOL_DEFAULT = ("var", "iocscope", "spool")  # under the Wazuh directory
SPOOL_TMP = "tmp"
SPOOL_NEW = "new"
SPOOL_DIR_MODE = 0o770  # the wazuh group writes, the daemon's user reads and deletes
SPOOL_FILE_MODE = 0o640
SPOOL_KIND = "alert"
SPOOL_NAME_FORMAT = "{time_ns}.{pid}.{random}.{kind}.json"

LOG_FILE = ("logs", "integrations.log")  # under the Wazuh directory
# Alert ids are short ("1714557600.1000"); a longer value is cut in log lines.
LOGGED_VALUE_LENGTH = 80

# iocscope's own events carry the location "iocscope" (the queue header the
# daemon writes, iocscope.wazuh.queue.LOCATION) and the marker "iocscope" in
# data.integration or as the key data.iocscope. The rule group "iocscope"
# is no sign of an own event: iocscope's rules match on data.integration,
# which a log line can set. Alerts about active-response runs
# ("active_response") would feed blocks and enrichments back into each other.
OWN_INTEGRATION = "iocscope"
OWN_LOCATION = "iocscope"
SKIPPED_GROUPS = ("active_response",)

JSON_WHITESPACE = " \t\n\r"


class Invocation:
    """The arguments of one integratord call, parsed leniently."""

    __slots__ = ("alert_file", "api_key", "debug", "options_file", "retries", "timeout")

    def __init__(self, argv: list[str]) -> None:
        self.alert_file = _arg(argv, ARG_ALERT_FILE)
        self.api_key = _arg(argv, ARG_API_KEY)
        self.debug = _arg(argv, ARG_DEBUG) == DEBUG_FLAG
        self.options_file = _find_options_file(argv)
        # Parsed for completeness: the script makes no call that could time out.
        self.timeout = _leading_int(_arg(argv, ARG_TIMEOUT))
        self.retries = _leading_int(_arg(argv, ARG_RETRIES))


def _arg(argv: list[str], index: int) -> str:
    return argv[index] if len(argv) > index else ""


def _find_options_file(argv: list[str]) -> str:
    # Scanned from the debug slot on, because the position shifts between
    # versions and the redirect may be glued to it.
    for value in argv[ARG_DEBUG:]:
        words = value.split()
        if words and words[0].endswith(OPTIONS_SUFFIX):
            return words[0]
    return ""


def _leading_int(value: str) -> int | None:
    digits = ""
    for char in value.strip():
        if char not in "0123456789":  # str.isdigit() accepts digits int() rejects
            break
        digits += char
    return int(digits) if digits else None


class DebugLog:
    """Appends one line per event to integrations.log when debug is on."""

    def __init__(self, path: str, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, message: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        line = f"{stamp} {SCRIPT_NAME}: {message}\n"
        try:
            with open(self.path, "a", encoding="utf-8") as log:
                log.write(line)
        except OSError:
            pass  # a missing or read-only log must not cost the alert


def parse_json_object(text: str) -> dict[str, object] | None:
    """Parse ``text`` as one JSON object; return None when it is anything else.

    Importing ``json`` takes about 8 ms, 6 ms of them for ``re``, where the
    interpreter itself starts in 11 ms (CPython 3.11, measured with
    ``-X importtime`` on a 2-CPU development VM). The C scanner behind
    ``json`` parses the same grammar without ``re``, so the ``json`` module
    is only the fallback, for invalid input and where ``_json`` is absent.
    """
    start = len(text) - len(text.lstrip(JSON_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    if text[end:].strip(JSON_WHITESPACE):
        return None
    return value if isinstance(value, dict) else None


def _scan(text: str, start: int) -> tuple[object, int]:
    try:
        return _c_scan(text, start)
    except (ImportError, SystemError):
        # ImportError: no _json in this Python. SystemError: CPython 3.10 and
        # 3.11 report a syntax error this way while json.decoder is not
        # imported, because the C scanner looks the error class up in
        # sys.modules only (3.9 and 3.12 import it). json imports it, and
        # raises the usual ValueError.
        import json  # noqa: PLC0415  # the slow path, for invalid input only

        return json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text, start)


def _c_scan(text: str, start: int) -> tuple[object, int]:
    from _json import make_scanner  # noqa: PLC0415  # ImportError is handled by the caller

    # typeshed types the context as make_scanner itself; any object with the
    # attributes of _ScanContext works, as json.decoder.JSONDecoder shows.
    scanner = make_scanner(_ScanContext())  # type: ignore[arg-type]
    return scanner(text, start)


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN and Infinity, but they are not JSON (RFC 8259)
    # and the daemon's parser rejects them.
    raise ValueError(f"{name} is not a JSON value")


class _ScanContext:
    # The settings the C scanner reads: json.loads's defaults, but strict about constants.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


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


def loggable(value: object) -> str:
    """Return ``value`` as one short printable line, safe to put in a log."""
    text = str(value)[:LOGGED_VALUE_LENGTH]
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def wazuh_dir() -> str:
    """Return the Wazuh directory: the parent of this script's integrations/."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def spool_dir(base: str, options_file: str, log: DebugLog) -> str:
    """Choose the spool: IOCSCOPE_SPOOL_DIR, then the options file, then the default."""
    configured = os.environ.get(SPOOL_ENV, "")
    if configured:
        return configured
    if options_file:
        configured = _spool_option(options_file, log)
        if configured:
            return configured
    return os.path.join(base, *SPOOL_DEFAULT)


def _spool_option(options_file: str, log: DebugLog) -> str:
    try:
        with open(options_file, encoding="utf-8") as handle:
            options = parse_json_object(handle.read())
    except (OSError, UnicodeDecodeError) as exc:
        log.write(f"options file {options_file} unreadable ({exc}); using the default spool")
        return ""
    value = options.get(SPOOL_OPTION, "") if options is not None else None
    if not isinstance(value, str):
        log.write(
            f"options file {options_file}: {SPOOL_OPTION} is invalid; using the default spool"
        )
        return ""
    return value


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


def main(argv: list[str]) -> int:
    """Run one integratord call and return the exit code."""
    invocation = Invocation(argv)
    base = wazuh_dir()
    log = DebugLog(os.path.join(base, *LOG_FILE), invocation.debug)
    if invocation.api_key:
        log.write(
            "an API key was passed; iocscope ignores it. Set source API keys in "
            "iocscope's configuration and remove <api_key> from this integration"
        )
    if not invocation.alert_file:
        log.write("no alert file argument; integratord passes it first")
        return EXIT_BAD_ARGS
    try:
        with open(invocation.alert_file, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        log.write(f"alert file {invocation.alert_file} unreadable: {exc.strerror}")
        return EXIT_ALERT_UNREADABLE
    return _forward(raw, invocation, base, log)


def _forward(raw: bytes, invocation: Invocation, base: str, log: DebugLog) -> int:
    try:
        alert = parse_json_object(raw.decode("utf-8"))
    except UnicodeDecodeError:
        alert = None
    if alert is None:
        log.write(f"alert file {invocation.alert_file} is not one JSON object")
        return EXIT_ALERT_INVALID
    alert_id = loggable(alert.get("id"))
    if is_own_event(alert):
        log.write(f"dropped alert {alert_id}: iocscope's own event or an active response")
        return EXIT_OWN_EVENT
    directory = spool_dir(base, invocation.options_file, log)
    try:
        name = write_spool_file(directory, raw, SPOOL_KIND)
    except OSError as exc:
        log.write(f"alert {alert_id} not spooled in {directory}: {exc.strerror}")
        return EXIT_SPOOL_FAILED
    log.write(f"alert {alert_id} spooled as {name}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
