#!/usr/bin/env bash
# The prepared first GPU check (issue 13): CUDA tests, inference img/s against the reference
# loop, bf16-vs-fp32 maps, stage-1/stage-2 it/s and peak memory, all into $OUT/gpu-report.md.
#
#   bash tools/gpu_check.sh            # on one data-centre GPU, about 8 minutes at most
#   bash tools/gpu_check.sh --dry-run  # any CPU, under a minute: tiny sizes, every code path
#
# OUT defaults to ./gpu-check-out. Exit status: non-zero when the CUDA tests or a measurement
# fail (the report is still written when the measurements ran).
set -euo pipefail

DRY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="--dry-run" ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "error: unknown argument $arg (use --dry-run)" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
cd "$ROOT"
# One OpenMP thread per process would starve the data workers on a GPU box; only the dry run,
# which shares small CPUs with other jobs, is pinned.
if [[ -n "$DRY" ]]; then
  export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
fi
RUN=(uv run --frozen)

# 1. CUDA tests (pytest marker "cuda"; skipped, not failed, without a GPU). Budget: 3 minutes.
PYTEST_LOG="$OUT/cuda-tests.log"
set +e
timeout 180 "${RUN[@]}" pytest -m cuda -q \
  packages/threedsr/tests/test_cuda.py packages/vqcore/tests/test_procedural_cuda.py >"$PYTEST_LOG" 2>&1
PYTEST_RC=$?
set -e
tail -n 3 "$PYTEST_LOG"

# 2-4. Measurements and the report. Budget: 5 minutes.
timeout 300 "${RUN[@]}" python tools/bench/gpu_check.py --out "$OUT" $DRY \
  --pytest-log "$PYTEST_LOG" --pytest-rc "$PYTEST_RC"

echo "report: $OUT/gpu-report.md"
exit "$PYTEST_RC"
