#!/usr/bin/env bash
# Issue 25's GPU measurements, prepared on a CPU, in parts that each fit one device call.
#
#   bash tools/gpu_session.sh check                # gpu_check.sh: CUDA tests, speed, precision
#   bash tools/gpu_session.sh curve rgbd           # 3DSR on the packed cable_gland copy
#   bash tools/gpu_session.sh curve depth          #   (gpu preset, fused; every point scores
#   bash tools/gpu_session.sh curve synthetic      #   fused, 3DSR alone and memory alone)
#   bash tools/gpu_session.sh curve candycane      # rgbd on the packed Eyecandies CandyCane copy
#   bash tools/gpu_session.sh --dry-run curve rgbd # any CPU: tiny widths, every code path
#
# Why parts: the speed and precision checks take about 5 minutes and one curve to 5 training
# minutes about 7 (two evaluations of three maps each, then the 3DSR map under fp32, tf32 and
# bf16), so "everything in 10 minutes" does not fit one call; each part does, and MINUTES
# (default "2 5") picks the points. Results go to $OUT (default ./gpu-session-out): curve.json,
# the run log and gpu-report.md. The cable_gland pack is $PACK (default
# gpu-data/cable_gland-256-uint8.3dsrpack, made by `threedsr-cli pack --size 256 --rgb uint8`;
# carry the gpu-data folder, it is ignored by git); the CandyCane pack is $PACK_CANDYCANE (default
# gpu-data/CandyCane-256-uint8.3dsrpack, issue 23's deliverable 4). Python: as gpu_check.sh (uv when synced, else
# tools/portable.sh with python3 or $PYTHON).
set -euo pipefail

DRY=""
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
PART="${1:-}"
WHAT="${2:-}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-session-out}"
MINUTES="${MINUTES:-2 5}"
PACK="${PACK:-$ROOT/gpu-data/cable_gland-256-uint8.3dsrpack}"
PACK_CANDYCANE="${PACK_CANDYCANE:-$ROOT/gpu-data/CandyCane-256-uint8.3dsrpack}"
mkdir -p "$OUT"
cd "$ROOT"
if [[ -z "${PYTHON:-}" ]] && command -v uv >/dev/null 2>&1 && [[ -d .venv ]]; then
  RUN=(uv run --frozen python)
else
  RUN=(bash tools/portable.sh "${PYTHON:-python3}")
fi

case "$PART" in
  check)
    OUT="$OUT" bash tools/gpu_check.sh ${DRY:+--dry-run}
    exit $?
    ;;
  curve) ;;
  *) echo "error: give 'check' or 'curve rgbd|depth|synthetic|candycane' (see the file's head)" >&2; exit 2 ;;
esac

ARGS=(--preset gpu --set 'method="fused"' --out "$OUT/curve-$WHAT" --final-precisions fp32 tf32 bf16)
case "$WHAT" in
  rgbd|depth|candycane)
    SETUP="$WHAT"; CATEGORY=cable_gland; FILE="$PACK"
    [[ "$WHAT" == candycane ]] && { SETUP=rgbd; CATEGORY=CandyCane; FILE="$PACK_CANDYCANE"; }
    if [[ -n "$DRY" ]]; then
      DATA="$OUT/dry-data"
      "${RUN[@]}" -c "import depthsim.scenes as s; s.generate_dataset('$DATA', classes=['puck'], size=64, n_train=6, n_validation=2, n_test_per_type=2, seed=3)"
      ARGS+=(--data "$DATA" --category puck --setup "$SETUP")
    else
      [[ -f "$FILE" ]] || { echo "error: $FILE: no $CATEGORY pack (threedsr-cli pack ... --size 256 --rgb uint8)" >&2; exit 2; }
      ARGS+=(--data "$FILE" --category "$CATEGORY" --setup "$SETUP")
    fi
    ;;
  synthetic)
    ARGS+=(--synthetic "$OUT/synthetic-benchmark" --category puck --setup rgbd)
    ;;
  *) echo "error: curve needs rgbd, depth, synthetic or candycane" >&2; exit 2 ;;
esac
if [[ -n "$DRY" ]]; then
  # Tiny paper-architecture heads, 64 px, a few iterations; the warm-up sizes the rest.
  ARGS+=(--device cpu --warmup 2 --minutes 0.02 0.04 --set image_size=64 --set batch_size=2
    --set unet_base=4 --set srm_base=8 --set objdec_width=8 --set objdec_hidden=8
    --set objdec_res_hidden=8 --set objdec_bottleneck=8 --set log_every=1)
  [[ "$WHAT" == synthetic ]] && { echo "error: the dry run has no synthetic curve (it generates 256 px scenes)" >&2; exit 2; }
else
  # shellcheck disable=SC2206
  ARGS+=(--device cuda --threads 8 --minutes $MINUTES)
fi
"${RUN[@]}" tools/bench/learning_curve.py "${ARGS[@]}" 2>&1 | tee "$OUT/curve-$WHAT.log"
echo "curve: $OUT/curve-$WHAT/curve.json"
