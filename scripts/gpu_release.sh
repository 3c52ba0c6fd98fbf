#!/usr/bin/env bash
# One call on a lent GPU (or Colab): train a release candidate, score it on every set of real pairs and on
# drop-free photos, and export it, all under OUT. Resumable: a second call continues the training in OUT.
#
#   bash scripts/gpu_release.sh [OUT]                  # default runs/release
#   PRESET=cpu ITERATIONS=20000 SETS="width=1.0 arn_width=1.0" bash scripts/gpu_release.sh runs/release-w1
#
# env: PYTHON (default .venv/bin/python, else python3), PRESET (default cpu: no ImageNet VGG, which a machine
# without the internet cannot load), ITERATIONS (default: the preset's), SETS (space-separated KEY=VALUE
# config overrides, as agan train --set), REAL (default ../shared/real beside the repository: every folder
# in it with rain/ and clean/ is scored at each validation point; absent: skipped, said so), T_TRAIN /
# T_SCORE (time limits in seconds, default 480 / 120: the training stops at its limit and a later call
# resumes it; the export still runs), MEASURE (synthetic frames scored for the card, default 12).
# The release goes to OUT/release (agan/weights is never touched): copy it there after reading its card.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-runs/release}"
PY="${PYTHON:-$([ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}"
PRESET="${PRESET:-cpu}"
REAL="${REAL:-$ROOT/../shared/real}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
cd "$ROOT"
export PYTHONUNBUFFERED=1

"$PY" -c "import torch; print('torch', torch.__version__, '| device:', torch.cuda.get_device_name() \
  if torch.cuda.is_available() else 'CPU (no CUDA)')"

# 1. train (resume when OUT already holds this run)
args=(--preset "$PRESET" --out "$OUT/run" --no-progress)
[ -n "${ITERATIONS:-}" ] && args+=(--iterations "$ITERATIONS")
for kv in ${SETS:-}; do args+=(--set "$kv"); done
real=()
for d in "$REAL"/*/; do [ -d "$d/rain" ] && [ -d "$d/clean" ] && real+=("${d%/}"); done
if [ ${#real[@]} -gt 0 ]; then args+=(--real-val "${real[@]}"); else echo "no real pairs under $REAL: skipped"; fi
[ -f "$OUT/run/checkpoints/last.pt" ] && args+=(--resume)
echo "== train: agan train ${args[*]}"
timeout --signal=INT "${T_TRAIN:-480}" "$PY" -m agan train "${args[@]}" 2>&1 | tail -n 4

# 2. score: every set of real pairs (the kit's own yardstick, one line per image) and drop-free photos
W="$OUT/run/checkpoints/generator.pt"
if [ -f "$W" ]; then
  echo "== real pairs"
  for d in "${real[@]}"; do
    timeout "${T_SCORE:-120}" "$PY" benchmarks/real_pairs.py --weights "$W" --pairs "$d" --precision fp32 \
      2>&1 | tail -n 8
  done
  echo "== drop-free photos"
  timeout "${T_SCORE:-120}" "$PY" benchmarks/bench_clean.py --weights "$W" --real "$REAL" 2>&1 | tail -n 5
fi

# 3. export (only a finished run: its card needs a 'done' row in metrics.jsonl, agan.train.records)
finished="import sys; from agan.train.records import DONE, read_rows
sys.exit(not any(r.get('split') == DONE and not r.get('stopped') for r in read_rows(sys.argv[1])))"
if "$PY" -c "$finished" "$OUT/run/metrics.jsonl" 2>/dev/null; then
  echo "== export"
  "$PY" scripts/export_release.py "$OUT/run" --out "$OUT/release" --overwrite --measure "${MEASURE:-12}" \
    --real "$([ ${#real[@]} -gt 0 ] && echo "${real[0]}" || echo "")" 2>&1 | tail -n 3
else
  echo "== export: skipped (the training has not finished; run the same command again to resume it)"
fi
