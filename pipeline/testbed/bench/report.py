"""The benchmark's figures as people read them: ratios to the floors, a console table, and the
Markdown table of docs/bench.md."""

from __future__ import annotations


def with_ratios(results: list[dict]) -> list[dict]:
    floor = next((r for r in results if r["stage"] == "floor" and "error" not in r), None)
    naive = {r["db"]: r for r in results if r["stage"] == "naive" and "error" not in r}
    store = {r["db"]: r for r in results if r["stage"] == "store" and "error" not in r}
    bare = {r["db"]: r for r in results if r["stage"] == "bare" and "error" not in r}
    for r in results:
        if "error" in r:
            continue
        r["seconds"] = round(r["seconds"], 2)
        r["rows_per_s"] = round(r["rows"] / r["seconds"]) if r["seconds"] else None
        if floor and r.get("unit") is None:
            r["x_floor"] = round(r["seconds"] / floor["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in naive:
            r["x_faster_than_naive"] = round(naive[r["db"]]["seconds"] / r["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in store:
            r["x_store_floor"] = round(r["seconds"] / store[r["db"]]["seconds"], 2)
        if r["stage"] == "ingest" and r["db"] in bare:
            r["bare_rows_per_s"] = round(bare[r["db"]]["rows"] / bare[r["db"]]["seconds"])
    return results


def _notes(r: dict, *, stage_decimals: int) -> str:
    """The notes column of one result: stage seconds inside it, startup, ratios, unit."""
    notes = []
    if "stage_seconds" in r:
        notes.append(
            ", ".join(f"{k} {v:.{stage_decimals}f} s" for k, v in r["stage_seconds"].items())
        )
    if "untimed_seconds" in r:
        notes.append(f"the writes alone; +{r['untimed_seconds']:.0f} s parse and dedupe untimed")
    if "startup_seconds" in r:
        notes.append(f"+{r['startup_seconds']:.0f} s startup")
    if "x_faster_than_naive" in r:
        notes.append(f"{r['x_faster_than_naive']}x naive")
    if "x_store_floor" in r:
        notes.append(f"{r['x_store_floor']}x the store floor")
    if "bare_rows_per_s" in r:
        notes.append(f"bare write {r['bare_rows_per_s'] / 1000:.0f}k rows/s")
    if r.get("unit"):
        notes.append(r["unit"])
    return "; ".join(notes)


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    feed = report["feed"]
    table = Table(title=f"eincome bench: {feed['rows']:,} rows, {feed['points']:,} points")
    for column in ("stage", "db", "rows", "seconds", "rows/s", "peak MiB", "x floor", "notes"):
        table.add_column(column, justify="left" if column in ("stage", "db", "notes") else "right")
    for r in report["results"]:
        if "error" in r:
            table.add_row(r["stage"], r["db"], "", "", "", "", "", r["error"][:80])
            continue
        table.add_row(
            r["stage"],
            r["db"],
            f"{r['rows']:,}",
            f"{r['seconds']:.2f}",
            f"{r['rows_per_s']:,}" if r.get("rows_per_s") else "",
            f"{r['peak_mib']:,.0f}",
            f"{r['x_floor']:.2f}" if r.get("x_floor") is not None else "",
            _notes(r, stage_decimals=1),
        )
    Console(width=max(Console().width, 150)).print(table)


def markdown_table(report: dict) -> str:
    """The results as a Markdown table, for docs/bench.md and the README."""
    lines = [
        "| stage | db | rows | seconds | rows/s | peak MiB | x floor | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        if "error" in r:
            lines.append(f"| {r['stage']} | {r['db']} | | | | | | {r['error'][:100]} |")
            continue
        ratio = f"{r['x_floor']:.2f}" if r.get("x_floor") is not None else ""
        lines.append(
            f"| {r['stage']} | {r['db']} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r.get('rows_per_s') or 0:,} | {r['peak_mib']:,.0f} | {ratio} | {_notes(r, stage_decimals=0)} |"
        )
    return "\n".join(lines)
