"""Time one forwarder run per alert against a bare interpreter start.

Run: ``.venv/bin/python bench/forwarder.py [RUNS]``. Each run starts the
``custom-iocscope`` launcher in a fake Wazuh directory exactly as the test
harness does (integratord 4.8 argv, no debug, a new alert file each time,
a real spool write with fsync). The baseline is ``python3 -S -c pass`` with
the same interpreter the launcher runs. The script prints median wall times
and their ratio. The aim is a ratio of at most 2, because integratord runs
one forwarder process per alert, one at a time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The harness lives in the test tree, which is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.wazuh.harness import (
    WazuhTree,
    integratord_argv,
    make_tree,
    sample_alert,
    script_env,
    write_alert_file,
)

DEFAULT_RUNS = 50


def time_forwarder(tree: WazuhTree, env: dict[str, str], index: int) -> float:
    """Return the wall time of one forwarder run; writing the alert file is integratord's cost."""
    alert_file = write_alert_file(tree, sample_alert(f"1714557600.{index + 2000}"))
    argv = integratord_argv("4.8", str(tree.forwarder), str(alert_file))
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True)  # noqa: S603  # argv built from fixed parts
    elapsed = time.perf_counter() - start
    alert_file.unlink()
    return elapsed


def time_bare(env: dict[str, str]) -> float:
    """Return the wall time of ``python3 -S -c pass`` with the launcher's interpreter."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-S", "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main(runs: int) -> None:
    env = script_env()
    with tempfile.TemporaryDirectory() as temp:
        tree = make_tree(Path(temp))
        time_forwarder(tree, env, -1)  # warm-up: page cache and the file system
        time_bare(env)
        forwarder: list[float] = []
        baseline: list[float] = []
        # Alternating the two spreads any drift of the machine's load over both.
        for index in range(runs):
            forwarder.append(time_forwarder(tree, env, index))
            baseline.append(time_bare(env))
        spooled = len(tree.spooled())
    forwarder_ms = statistics.median(forwarder) * 1000
    baseline_ms = statistics.median(baseline) * 1000
    print(f"runs: {runs} of each after one warm-up; interpreter: {sys.executable}")
    print(f"forwarder per alert, median: {forwarder_ms:.2f} ms ({spooled} files spooled)")
    print(f"python3 -S -c pass, median:  {baseline_ms:.2f} ms")
    print(f"ratio: {forwarder_ms / baseline_ms:.2f} (target: at most 2)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RUNS)
