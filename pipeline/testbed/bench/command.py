"""``python -m pipeline.testbed.bench``'s command line (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.testbed.bench.report import markdown_table, print_table
from pipeline.testbed.bench.run import DEFAULT_POINTS, DEFAULT_ROWS, QUICK_ROWS, run
from pipeline.testbed.bench.stages import STAGES, run_child


def main(argv: list[str] | None = None) -> None:
    from pipeline.testbed import bench

    parser = argparse.ArgumentParser(
        prog="python -m pipeline.testbed.bench", description=bench.__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rows", type=int, help=f"feed rows (default {DEFAULT_ROWS:,}; quick {QUICK_ROWS:,})"
    )
    parser.add_argument(
        "--points", type=int, help=f"collection points (default {DEFAULT_POINTS:,})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small run for CI (well under a minute)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument(
        "--chunk-rows",
        type=int,
        default=200_000,
        help="rows per streamed chunk (as EINCOME_CHUNK_ROWS)",
    )
    parser.add_argument("--out", default="bench-results", help="folder for bench.json")
    parser.add_argument(
        "--skip-detection", action="store_true", help="leave out backfill/hourly scoring"
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        metavar="STAGES",
        help=f"run only these stages, comma-separated ({', '.join(STAGES)})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated feed and databases")
    parser.add_argument("--render", metavar="JSON", help="print an earlier bench.json as Markdown")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--params", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        run_child(args.stage, args.params)
        return
    if args.render:
        print(markdown_table(json.loads(Path(args.render).read_text())))
        return
    report = run(args)
    print_table(report)
    print(f"written: {Path(args.out) / 'bench.json'}", file=sys.stderr)
