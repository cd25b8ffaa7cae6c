#!/usr/bin/env bash
# `bench/same-outputs.sh OLD_BIN NEW_BIN`: do two builds write the same files?
# For refactors that must not change what any stage writes (moving code
# between crates, splitting functions). Runs the whole pipeline with each
# build's binaries on the same input (synth CSV exports with defects,
# then extract --source csv, transform, validate, train, report; and synth
# straight to Parquet), then compares every file under each data folder:
#   - Parquet, CSV, LightGBM model text: byte for byte, except the raw
#     layer's `_extracted_at` (the wall clock of the run): those files must
#     hold the same rows in the same order once it is left out;
#   - JSON and JSON lines: equal after dropping the fields that hold the
#     wall clock (*_at, *_seconds, run ids, versions of the programs);
#   - report.html: equal after masking times and durations.
# Prints each file compared and exits 1 when any differs. With
# COMMON=1, files only one build writes (a feature added between them) are
# listed and the files both write are compared.
set -euo pipefail
OLD=${1:?usage: same-outputs.sh OLD_BIN NEW_BIN}
NEW=${2:?usage: same-outputs.sh OLD_BIN NEW_BIN}
ROWS=${ROWS:-20000}
WORK=$(mktemp -d /tmp/gm-same.XXXXXX)
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$WORK"' EXIT
NOW=2026-11-01T00:00:00Z

pipeline() { # BIN DIR; the first stage that fails fails it
    local bin=$1 dir=$2
    "$bin/synth" --format csv --out "$dir/exports" --rows "$ROWS" --seed 7 --now "$NOW" --messy 0.03 >> "$WORK/log" 2>&1 || return 1
    "$bin/extract" --source csv --input "$dir/exports" --data "$dir/data" --since 2026-09-01 >> "$WORK/log" 2>&1 || return 1
    "$bin/transform" --data "$dir/data" >> "$WORK/log" 2>&1 || return 1
    "$bin/validate" --data "$dir/data" --now "$NOW" >> "$WORK/log" 2>&1 || return 1
    "$bin/train" --data "$dir/data" --threads 2 >> "$WORK/log" 2>&1 || return 1
    "$bin/report" --data "$dir/data" >> "$WORK/log" 2>&1 || return 1
    "$bin/synth" --data "$dir/synth" --rows "$ROWS" --seed 9 --now "$NOW" --messy 0.03 >> "$WORK/log" 2>&1 || return 1
}

# Both run in the same folder (the page and the cards name their paths).
for build in old new; do
    bin=$OLD
    [[ $build == new ]] && bin=$NEW
    if ! pipeline "$bin" "$WORK/run"; then
        tail -5 "$WORK/log" >&2
        echo "same-outputs: the pipeline failed with $bin" >&2
        exit 1
    fi
    mv "$WORK/run" "$WORK/$build"
done

python3 - "$WORK/old" "$WORK/new" <<'PY'
import json, os, re, sys
old, new = sys.argv[1], sys.argv[2]
CLOCK = re.compile(r'(_at|_seconds|^run_id|^versions|^data_file|^computed|^validated|^trained|^extracted)$')

def files(root):
    out = set()
    for d, dirs, fs in os.walk(root, followlinks=True):
        dirs[:] = [x for x in dirs if x not in ('.gen', '.current', '.staging', '.journal')]
        for f in fs:
            if f.startswith('.') or f.endswith('.lock'):
                continue
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out

def scrub(v):
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if not CLOCK.search(k)}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v

def text(path):
    s = open(path, encoding='utf-8').read()
    s = re.sub(r'\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?Z?( UTC)?', 'TIME', s)
    s = re.sub(r'\d{2}-\d{2} \d{2}:\d{2}', 'TIME', s)
    s = re.sub(r'\d+\.\d s\b', 'N s', s)
    return s

a, b = files(old), files(new)
if not a:
    print('same-outputs: no files written'); sys.exit(1)
if a != b:
    if os.environ.get('COMMON') != '1':
        print('same-outputs: different files:', sorted(a ^ b)); sys.exit(1)
    for rel in sorted(a - b):
        print('only old  ' + rel)
    for rel in sorted(b - a):
        print('only new  ' + rel)
    a = a & b
differ = 0
for rel in sorted(a):
    pa, pb = os.path.join(old, rel), os.path.join(new, rel)
    if rel.endswith('.json'):
        same = scrub(json.load(open(pa))) == scrub(json.load(open(pb)))
    elif rel.endswith('.jsonl'):
        la = [scrub(json.loads(l)) for l in open(pa) if l.strip()]
        lb = [scrub(json.loads(l)) for l in open(pb) if l.strip()]
        same = la == lb
    elif rel.endswith('.html'):
        same = text(pa) == text(pb)
    else:
        same = open(pa, 'rb').read() == open(pb, 'rb').read()
        if not same and rel.endswith('.parquet'):
            import polars as pl
            fa, fb = pl.read_parquet(pa), pl.read_parquet(pb)
            clock = [c for c in fa.columns if c == '_extracted_at']
            same = bool(clock) and fa.drop(clock).equals(fb.drop(clock))
            if same:
                rel += ' (all but _extracted_at)'
    print(('same      ' if same else 'DIFFERENT ') + rel)
    differ += not same
if differ:
    print(f'same-outputs: {differ} of {len(a)} files differ'); sys.exit(1)
print(f'same-outputs: {len(a)} files, all the same' + (' (of those both write)' if a != files(new) else ''))
PY
