"""Terminal rendering of enrichments with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

VERDICT_STYLES = {
    "malicious": "bold red",
    "suspicious": "bold yellow",
    "benign": "bold green",
    "unknown": "bold",
}


# Width of tables written to a pipe or file; a terminal sets its own width.
PIPE_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    """Return a console that keeps table rows whole when the output is not a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console = Console(stderr=stderr, width=PIPE_WIDTH)
    return console


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """Return ``"1 entry"`` or ``"3 entries"``."""
    return f"{count} {noun if count == 1 else (plural_noun or noun + 's')}"


def render_enrichment(console: Console, record: dict[str, Any]) -> None:
    """Print one enrichment record: headline, reasons, context and a row per source."""
    verdict = record["verdict"]
    headline = Text()
    headline.append(f"{record['display']} ", style="bold")
    headline.append(f"({record['type']}, {record['scope']})  ")
    headline.append(verdict.upper(), style=VERDICT_STYLES.get(verdict, ""))
    headline.append(f"  score {record['risk_score']}/100")
    console.print(headline)
    for reason in record["reasons"]:
        console.print(f"  - {reason}", highlight=False, markup=False)
    if record["context"]:
        context = ", ".join(f"{key}={value}" for key, value in record["context"].items())
        console.print(f"  context: {context}", highlight=False, markup=False)
    if record["sources"]:
        console.print(_sources_table(record["sources"]))


def _sources_table(sources: list[dict[str, Any]]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("source", "status", "result", "confidence", "summary", "reference"):
        table.add_column(column, overflow="fold")
    for source in sources:
        table.add_row(
            source["source"],
            source["status"],
            _outcome(source),
            str(source["confidence"]) if source["status"] == "ok" else "",
            Text(source.get("error") or source["summary"]),
            Text(source.get("reference") or ""),
        )
    return table


def _outcome(source: dict[str, Any]) -> Text:
    if source["status"] != "ok":
        return Text("-")
    if source["flagged"]:
        return Text("flagged", style="red")
    if source["benign"]:
        return Text("benign", style="green")
    return Text("listed" if source["found"] else "not listed")
