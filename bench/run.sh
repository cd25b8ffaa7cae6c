#!/usr/bin/env bash
# Speed and memory of every stage at ROWS rows per table (default 1M), and
# accuracy against LightGBM and scikit-learn in Python on the same files.
# Not a test: run it on a quiet machine with `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/time ]] || { echo "bench: needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 1; }
ROWS=${ROWS:-1000000}
BIN=${BIN:-target/release}
DATA=${BENCH_DATA:-$(mktemp -d /tmp/gm-bench.XXXXXX)}
OUT=${BENCH_OUT:-bench/results.md}

timed() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$DATA/.time" "$@" > "$DATA/.$name.log"
    read -r secs kib < "$DATA/.time"
    printf '| %s | %s | %.0f |\n' "$name" "$secs" "$((kib / 1024))" | tee -a "$DATA/.table"
}

: > "$DATA/.table"
echo "bench: $ROWS rows per table in $DATA" >&2
timed synth      "$BIN/synth" --data "$DATA" --rows "$ROWS" --seed 42 --messy 0.02
timed transform  "$BIN/transform" --data "$DATA"
timed validate   "$BIN/validate" --data "$DATA"
timed train      "$BIN/train" --data "$DATA" --seed 42
cat "$DATA/.train.log"

{
    echo "## Stage times, $ROWS rows per table ($(nproc) cores)"
    echo
    echo "| stage | seconds | peak MiB |"
    echo "|---|---|---|"
    cat "$DATA/.table"
    echo
    echo "Wall time of each model in train against its LightGBM and ridge fits (CV folds included):"
    echo
    python3 - "$DATA" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/reports/training.json"))
total = fits = 0.0
print("| model | training rows | train s | LightGBM fits s | ridge fits s | ratio |")
print("|---|---|---|---|---|---|")
for name, m in r["models"].items():
    f = m.get("fit_seconds", {})
    lgbm, ridge = f.get("lightgbm", 0.0), f.get("ridge", 0.0)
    total += m["train_seconds"]; fits += lgbm + ridge
    print(f"| {name} | {m['training_rows']} | {m['train_seconds']:.1f} | {lgbm:.1f} | {ridge:.1f} | {m['train_seconds'] / max(lgbm + ridge, 1e-9):.2f} |")
print(f"| all | | {total:.1f} | | | {total / max(fits, 1e-9):.2f} |")
PY
    echo
    if python3 -c "import lightgbm, sklearn, pandas, pyarrow" 2>/dev/null; then
        python3 bench/compare.py "$DATA"
    else
        echo "(pip install lightgbm scikit-learn pandas pyarrow for the Python comparison)"
    fi
} > "$OUT"
if [[ -z "${SKIP_EXTRACT_BENCH:-}" ]]; then
    {
        echo
        echo "## Extraction, 100k rows per table, every row exactly once"
        echo
        tests/with-postgres.sh cargo test --release --workspace -q -- --ignored bench_ --nocapture --test-threads=1 2>/dev/null \
            | grep '^bench:' | sed 's/^bench: /- /'
    } >> "$OUT"
fi
cat "$OUT"
