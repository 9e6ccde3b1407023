#!/usr/bin/env bash
# A plain `pip install eincome` (no extras) in a fresh venv gives a CLI whose main job works:
# points load, ingest, backfill, anomalies, cases on a small simulated regency; a command that
# needs an extra says which one. Run by .ci/run after the test suite (make base-install-check).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel -q --disable-pip-version-check --no-deps -w "$work/wheel" . >/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt "$work"/wheel/*.whl >/dev/null
export EINCOME_HOME="$work/home" EINCOME_MODELS_DIR="$work/models" EINCOME_DB_URL=
E="$work/venv/bin/eincome"
if "$work/venv/bin/python" -c "import fastapi" 2>/dev/null; then
    echo "base install check: fastapi came with the base install" >&2; exit 1
fi
"$work/venv/bin/python" -c "from pipeline.store.bulk import adbc_available; assert adbc_available(), 'pyarrow/ADBC missing from the base install'"
"$E" simulate --out "$work/sim" --points 12 --weeks 6 >/dev/null
"$E" points load "$work/sim/points.csv"
"$E" ingest --json "$work"/sim/feeds/* > "$work/ingest.json"
"$E" backfill --start 2025-11-03T00:00:00+07:00 --end 2025-12-15T00:00:00+07:00 | tail -1
flagged=$("$E" anomalies --format csv | tail -n +2 | wc -l)
cases=$("$E" cases --format csv | tail -n +2 | wc -l)
"$work/venv/bin/python" - "$work/ingest.json" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()] if not open(sys.argv[1]).read().lstrip().startswith("[") else json.load(open(sys.argv[1]))
accepted = sum(r["accepted"] for r in rows)
assert accepted > 10_000, f"only {accepted} rows accepted"
for r in rows:
    assert r["accepted"] + r["quarantined"] + r["duplicates"] == r["rows_read"], r
print(f"base install check: {len(rows)} files, {accepted} rows accepted")
PY
[ "$flagged" -gt 0 ] && [ "$cases" -gt 0 ] || { echo "base install check: nothing flagged" >&2; exit 1; }
if out=$("$E" serve 2>&1); then echo "base install check: serve ran without the web extra" >&2; exit 1; fi
grep -q "eincome\[web\]" <<<"$out" || { echo "base install check: serve did not name the extra: $out" >&2; exit 1; }
echo "base install check: ok ($flagged flagged point-hours, $cases cases; serve names the web extra)"
