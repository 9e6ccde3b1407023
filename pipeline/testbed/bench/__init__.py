"""The benchmark: where ingest time goes, as rows/s, wall seconds and peak memory per stage.

    python -m pipeline.testbed.bench [--rows N] [--points N] [--quick] [--db sqlite|postgres|both]

Generates one simulator feed of the given size, then runs each stage in its own subprocess (so
its peak RSS is its own) on SQLite and/or PostgreSQL:

- floor: the bare CSV parse by Arrow's CSV reader (``parse``), the project's own feed reader
  (``reader``: every line accounted for), and parse + minute/hour sums in Arrow (``floor``,
  nothing stored: every other figure's ratio is to it);
- parse + validate (Great Expectations on every chunk), nothing stored;
- ingest end to end (parse, validate, dedupe, store, minute + hour aggregates), with the
  seconds of each stage inside it;
- store: the rows bulk-written by the fastest path known - ADBC's bulk ingest of Arrow columns
  straight into the table (PostgreSQL: COPY in binary; SQLite: adbc-driver-sqlite) - into the
  real ``transactions`` table and nothing else, only the writes timed (the database's own floor
  for this schema); bare: the same into a table with no key or index (the least any writer of
  these rows pays);
- naive: pandas ``read_csv`` + ``to_sql`` into a bare table;
- backfill (aggregate + train + score) from the stored data, and one hourly scoring run (cold,
  then the same hour warm three times: CPU seconds of each),
  through the detection lane's ``pipeline.detection.backfill``.

Writes bench-results/bench.json and prints a table with each figure's ratio to the floor.
It is a script, not a timed test: figures depend on the machine and on what else runs on it.

The parts: ``stages`` (what is timed, one function per stage), ``run`` (the parent: generate,
run each stage in its process, save), ``report`` (ratios and tables) and ``command`` (the
command line).
"""

from pipeline.testbed.bench.command import main
from pipeline.testbed.bench.report import markdown_table, print_table
from pipeline.testbed.bench.run import generate_feed, run
from pipeline.testbed.bench.stages import STAGES

__all__ = ["STAGES", "generate_feed", "main", "markdown_table", "print_table", "run"]
