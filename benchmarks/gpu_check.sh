#!/usr/bin/env bash
# The kit on a CUDA GPU in one go (Colab, a lent machine): the CUDA tests, the inference bench, and the
# training speed of both presets. Writes logs and run folders under OUTDIR (its run folders are replaced).
#
#   bash benchmarks/gpu_check.sh [OUTDIR]            # default runs/gpu-check; PYTHON=python3 by default
#
# Each step has its own time limit (seconds, env CHECK_T_*) so that one slow step does not eat the others.
# The paper preset runs with vgg_weights=random unless VGG=imagenet (ImageNet weights need the internet or a
# local file: see docs/design.md); its speed does not depend on the VGG's weights.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-runs/gpu-check}"
PY="${PYTHON:-python3}"
CPU_STEPS="${CPU_STEPS:-1000}"
PAPER_STEPS="${PAPER_STEPS:-200}"
VGG="${VGG:-random}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"  # absolute: the steps run from the repository root
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
cd "$ROOT"
status=0
step() {  # step NAME LIMIT CMD...: run CMD under a time limit, log to OUT/NAME.log, remember a failure
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc $rc in $((SECONDS - t0)) s"
  tail -n "${TAIL:-6}" "$OUT/$name.log"
  [ $rc -eq 0 ] || status=1
}

nvidia-smi -L || true
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name())"
TAIL=15 step test_cuda "${CHECK_T_TEST:-240}" "$PY" -m pytest -q -rs -s -p no:cacheprovider tests/test_cuda.py
step bench "${CHECK_T_BENCH:-180}" "$PY" -m agan bench --device cuda --size 480x720 --repeats 5 \
  --paths plain,fast32,fp16 --no-synth
step train_cpu_preset "${CHECK_T_CPU:-240}" "$PY" -m agan train --preset cpu --iterations "$CPU_STEPS" \
  --out "$OUT/cpu" --overwrite --no-progress
step train_paper_preset "${CHECK_T_PAPER:-180}" "$PY" -m agan train --preset paper --vgg-weights "$VGG" \
  --iterations "$PAPER_STEPS" --out "$OUT/paper" --overwrite --no-progress \
  --set val_every="$PAPER_STEPS" --set sample_every="$PAPER_STEPS" --set ckpt_every="$PAPER_STEPS" --set val_size=16
# the same with the synthesiser in the main process (num_workers=0; the default -1 gives min(4, CPUs - 1) workers)
step train_paper_no_workers "${CHECK_T_PAPER:-180}" "$PY" -m agan train --preset paper --vgg-weights "$VGG" \
  --iterations "$PAPER_STEPS" --out "$OUT/paper-w0" --overwrite --no-progress --set num_workers=0 \
  --set val_every="$PAPER_STEPS" --set sample_every="$PAPER_STEPS" --set ckpt_every="$PAPER_STEPS" --set val_size=16
for run in cpu paper paper-w0; do  # steps/s of the logged windows after the first (warm-up, cuDNN autotuning)
  f="$OUT/$run/metrics.jsonl"
  [ -f "$f" ] && "$PY" - "$f" "$run" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
sps = [r["steps_per_s"] for r in rows if r["split"] == "train" and "steps_per_s" in r][1:]
val = [r for r in rows if r["split"] == "val"]
if sps:
    print(f"{sys.argv[2]}: median {statistics.median(sps):.2f} steps/s over {len(sps)} windows", end="")
if val:
    v = val[-1]
    print(f"; val at step {v['step']}: {v['psnr']:.2f} dB / {v['ssim']:.4f} (input {v['psnr_input']:.2f} / "
          f"{v['ssim_input']:.4f})", end="")
print()
EOF
done
exit $status
