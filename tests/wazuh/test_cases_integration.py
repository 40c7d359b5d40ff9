"""Public bug cases about Wazuh integration scripts and alert loops, run against iocscope's scripts.

Each test reads its case from the shared corpus (skipped when absent) and
checks the part that the forwarder or the active-response script owns.
"""

from __future__ import annotations

import ast
import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.corpus import cases_of
from tests.wazuh.harness import (
    ACTIVE_RESPONSE,
    FORWARDER,
    SCRIPTS,
    execd_message,
    make_tree,
    run_execd,
    run_integratord,
    run_script,
    sample_alert,
    write_alert_file,
)

SCRIPT_FILES = [FORWARDER, f"{FORWARDER}.py", ACTIVE_RESPONSE, f"{ACTIVE_RESPONSE}.py"]
PYTHON_SCRIPTS = [f"{FORWARDER}.py", f"{ACTIVE_RESPONSE}.py"]
NETWORK_MODULES = {"socket", "ssl", "http", "urllib", "requests", "httpx", "asyncio"}


def case(case_id: str) -> dict[str, Any]:
    """Return one public bug case, skipping the test when the corpus is absent."""
    cases = {
        item["id"]: item
        for family in ("integration_failure", "alert_loop_storm")
        for item in cases_of(family)
    }
    if case_id not in cases:
        pytest.skip(f"public bug case {case_id} is absent; the corpus lives beside the repository")
    return cases[case_id]


def imported_modules(file_name: str) -> set[str]:
    """Return the top-level names of every module the script imports, anywhere in it."""
    tree = ast.parse((SCRIPTS / file_name).read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("file_name", SCRIPT_FILES)
def test_b04_scripts_use_lf_only(file_name: str) -> None:
    case("B04")
    data = (SCRIPTS / file_name).read_bytes()
    assert b"\r" not in data
    assert data.endswith(b"\n")


@pytest.mark.parametrize("file_name", [FORWARDER, ACTIVE_RESPONSE])
def test_b04_launchers_start_with_sh(file_name: str) -> None:
    case("B04")
    assert (SCRIPTS / file_name).read_bytes().startswith(b"#!/bin/sh\n")


@pytest.mark.parametrize("file_name", PYTHON_SCRIPTS)
def test_b05_scripts_use_standard_library_only(file_name: str) -> None:
    case("B05")
    modules = imported_modules(file_name)
    assert modules
    assert modules - {"__future__"} <= sys.stdlib_module_names


def test_b05_case_import_would_be_caught() -> None:
    # The check above must reject the module of the reported failure.
    assert not set(case("B05")["input"]["script_imports"]) <= sys.stdlib_module_names


def test_b06_argv_variants_accepted(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    variants = case("B06")["input"]["argv_variants"]
    for number, variant in enumerate(variants):
        alert_file = write_alert_file(tree, {"id": f"1714557600.{number}", "rule": {"level": 10}})
        run = run_script([str(tree.forwarder), str(alert_file), *variant[1:]])
        assert (run.returncode, run.stderr) == (0, ""), variant
    assert len(tree.spooled()) == len(variants)


@pytest.mark.parametrize("file_name", PYTHON_SCRIPTS)
def test_b08_scripts_make_no_network_call(file_name: str) -> None:
    # The scripts only hand the alert to the local spool, so no provider can stall integratord.
    case("B08")
    assert imported_modules(file_name).isdisjoint(NETWORK_MODULES)


def test_b09_forwarder_only_enqueues(tmp_path: Path) -> None:
    config = case("B09")["input"]
    tree = make_tree(tmp_path)
    alert = sample_alert(rule={"level": config["alert_level"], "id": config["alert_rule_id"]})
    assert run_integratord(tree, alert).returncode == 0
    assert len(tree.spooled()) == 1


def test_b10_correlation_alert_spooled_unchanged(tmp_path: Path) -> None:
    # Which fields hold observables is the daemon's decision; the forwarder keeps every byte.
    alert = case("B10")["input"]
    tree = make_tree(tmp_path)
    alert_file = write_alert_file(tree, alert)
    raw = alert_file.read_bytes()
    assert run_script([str(tree.forwarder), str(alert_file)]).returncode == 0
    assert [path.read_bytes() for path in tree.spooled()] == [raw]


def test_b21_forwarder_ignores_active_response_alert(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert run_integratord(tree, case("B21")["input"]).returncode == 0
    assert tree.spooled() == []


def test_b21_active_response_ignores_active_response_alert(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    run, requests = run_execd(tree, execd_message("add", case("B21")["input"]))
    assert run.returncode == 0
    assert requests == []
    assert tree.spooled() == []


def own_event_of(case_alert: dict[str, Any]) -> dict[str, Any]:
    """Return the case's alert as iocscope's event: its marker and the location iocscope sends."""
    alert = copy.deepcopy(case_alert)
    alert["data"]["integration"] = "iocscope"
    alert["location"] = "iocscope"
    return alert


def test_b22_forwarder_drops_own_event(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    run = run_integratord(tree, own_event_of(case("B22")["input"]), debug=True)
    assert run.returncode == 0
    assert tree.spooled() == []
    log = (tree.logs / "integrations.log").read_text("utf-8")
    assert "dropped alert 1714557600.1000: iocscope's own event" in log


def test_b22_active_response_drops_own_event(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    run, requests = run_execd(tree, execd_message("add", own_event_of(case("B22")["input"])))
    assert run.returncode == 0
    assert requests == []
    assert tree.spooled() == []


def test_b22_other_product_marker_forwarded(tmp_path: Path) -> None:
    # Another integration's events are ordinary alerts for iocscope.
    tree = make_tree(tmp_path)
    assert run_integratord(tree, case("B22")["input"]).returncode == 0
    assert len(tree.spooled()) == 1
