#!/usr/bin/env bash
# A day of hourly collection with a retrain at the end, measured: rows, part
# files before and after compaction, disk use, time per cycle.
#
#   bench/collect-day.sh [ROWS_PER_DAY]     (default 100000 per table)
#
# The "database" is a set of CSV exports that grow by one hour of rows per
# cycle (synth's rows over one day, cut by created_at), read with
# `extract --incremental --max-parts 24` as `make collect` does.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
NOW=2026-01-02T00:00:00Z

"$BIN/synth" --rows "$ROWS" --days 1 --seed 11 --now "$NOW" --format csv --out "$WORK/day" >/dev/null
python3 - "$WORK" <<'PY'
import csv, os, sys
from datetime import datetime, timedelta
work = sys.argv[1]
start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
tables = ["ai_gm_explanations", "ai_gm_quality_feedback", "ai_gm_ab_testing"]
rows = {}
for t in tables:
    with open(f"{work}/day/{t}.csv", newline="") as f:
        r = csv.reader(f)
        header = next(r)
        at = header.index("created_at")
        body = sorted(r, key=lambda row: row[at])
    rows[t] = (header, at, body)
for hour in range(1, 25):
    out = f"{work}/hour-{hour:02d}"
    os.makedirs(out)
    cut = (start + timedelta(hours=hour)).strftime("%Y-%m-%d %H:%M:%S")
    for t, (header, at, body) in rows.items():
        with open(f"{out}/{t}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(row for row in body if row[at].replace("T", " ")[:19] < cut)
PY

DATA="$WORK/data"
printf '| hour | rows added | parts per table | raw on disk | cycle |\n|---|---|---|---|---|\n'
for hour in $(seq 1 24); do
    t0=$(date +%s.%N)
    "$BIN/extract" --data "$DATA" --source csv --input "$WORK/hour-$(printf %02d "$hour")" \
        --incremental --max-parts 24 --now "2026-01-01T$(printf %02d $((hour - 1))):59:59Z" >/dev/null
    t1=$(date +%s.%N)
    added=$(python3 -c "import json;r=json.load(open('$DATA/reports/extract.json'));print(sum(t['rows_written'] for t in r['tables'].values()))")
    nparts=$(ls "$DATA/raw/ai_gm_ab_testing" | wc -l)
    printf '| %d | %s | %s | %s | %.2f s |\n' "$hour" "$added" "$nparts" "$(du -sh "$DATA/raw" | cut -f1)" "$(echo "$t1 - $t0" | bc)"
done
# The next hour's part would make 25 > MAX_PARTS (24), and the 24 small ones
# are merged; with no new hour to read, the same merge is asked for directly.
"$BIN/extract" --data "$DATA" --source csv --input "$WORK/hour-24" --incremental --max-parts 12 --now "$NOW" >/dev/null
echo
echo "after compaction: $(ls "$DATA/raw/ai_gm_ab_testing" | wc -l) part(s) per table, raw $(du -sh "$DATA/raw" | cut -f1)"
t0=$(date +%s.%N)
"$BIN/transform" --data "$DATA" >/dev/null
"$BIN/validate" --data "$DATA" --now "$NOW" >/dev/null
"$BIN/train" --data "$DATA" > "$WORK/train.log"
"$BIN/report" --data "$DATA" >/dev/null
t1=$(date +%s.%N)
printf 'daily retrain (transform, validate, train, report): %.1f s; data folder %s\n' "$(echo "$t1 - $t0" | bc)" "$(du -sh "$DATA" | cut -f1)"
grep "promoted\|drift" "$WORK/train.log" || true
