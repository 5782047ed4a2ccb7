#!/usr/bin/env bash
# The prepared first GPU check (issue 13): CUDA tests, inference img/s against the reference
# loop, bf16-vs-fp32 maps, stage-1/stage-2 it/s and peak memory, all into $OUT/gpu-report.md.
#
#   bash tools/gpu_check.sh            # on one data-centre GPU, about 8 minutes at most
#   bash tools/gpu_check.sh --dry-run  # any CPU, under a minute: tiny sizes, every code path
#
# Python: `uv run --frozen` when uv is on PATH and the workspace is synced (.venv), else this
# tree on PYTHONPATH in an existing environment (tools/portable.sh: no uv, no network, nothing
# installed) with python3, or with PYTHON=/path/to/python, which also skips uv when set.
# OUT defaults to ./gpu-check-out. Exit status: non-zero when the CUDA tests or a measurement
# fail (the report is still written when the measurements ran).
set -euo pipefail

DRY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY="--dry-run" ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
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
if [[ -z "${PYTHON:-}" ]] && command -v uv >/dev/null 2>&1 && [[ -d "$ROOT/.venv" ]]; then
  RUN=(uv run --frozen)
  echo "python: uv run --frozen (the synced workspace)"
else
  RUN=(bash "$ROOT/tools/portable.sh")
  echo "python: ${PYTHON:-python3} with this source tree on PYTHONPATH (tools/portable.sh)"
fi

# 1. CUDA tests (pytest marker "cuda"; skipped, not failed, without a GPU). Budget: 3 minutes.
# One process (-n 0 is not an option where pytest-xdist is absent): workers would share the GPU
# and each pay torch's start-up.
PYTEST_LOG="$OUT/cuda-tests.log"
set +e
timeout 180 "${RUN[@]}" python -m pytest -p no:xdist -m cuda -q \
  packages/threedsr/tests/test_cuda.py packages/vqcore/tests/test_procedural_cuda.py >"$PYTEST_LOG" 2>&1
PYTEST_RC=$?
set -e
tail -n 3 "$PYTEST_LOG"

# 2-4. Measurements and the report. Budget: 5 minutes.
timeout 300 "${RUN[@]}" python tools/bench/gpu_check.py --out "$OUT" $DRY \
  --pytest-log "$PYTEST_LOG" --pytest-rc "$PYTEST_RC"

echo "report: $OUT/gpu-report.md"
exit "$PYTEST_RC"
