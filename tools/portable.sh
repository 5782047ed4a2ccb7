#!/usr/bin/env bash
# Run a command on this source tree in an existing Python environment (a GPU server's python3 with
# torch): no uv, no network, nothing installed. The workspace packages are imported from
# packages/*/src and tools/cli/src; their dependencies must already be importable there.
#
#   bash tools/portable.sh threedsr-cli train --data DIR --category C --out RUN
#   bash tools/portable.sh python3 -m pytest packages/threedsr/tests/test_cuda.py
#   PYTHON=/opt/conda/bin/python bash tools/portable.sh threedsr-cli --help
#
# threedsr-cli becomes "$PYTHON -m threedsr_cli", python / python3 become "$PYTHON" (default:
# python3); any other command runs as given, with the same PYTHONPATH.
set -euo pipefail

if [[ $# -eq 0 || "$1" == "-h" || "$1" == "--help" ]]; then
  sed -n 2,11p "$0"
  [[ $# -eq 0 ]] && exit 2 || exit 0
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON: no such Python (set PYTHON=/path/to/python)" >&2
  exit 2
fi

SRC="$ROOT/tools/cli/src"
for dir in "$ROOT"/packages/*/src; do
  SRC="$SRC:$dir"
done
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"

# numba (cache=True) writes its caches beside the sources, else in ~/.cache/numba; with both
# read-only (a shared checkout, a locked-down home) every kernel import dies in "cannot cache
# function ...: no locator available". Only then does the cache go to a private temp folder.
if [[ -z "${NUMBA_CACHE_DIR:-}" && ! -w "$ROOT/packages/depthsim/src/depthsim" ]]; then
  user_cache="${HOME:-/nonexistent}/.cache"
  if ! { mkdir -p "$user_cache" 2>/dev/null && [[ -w "$user_cache" ]]; }; then
    export NUMBA_CACHE_DIR="${TMPDIR:-/tmp}/threedsr-numba-$(id -u)"
  fi
fi

case "$1" in
  threedsr-cli) shift; exec "$PYTHON" -m threedsr_cli "$@" ;;
  python | python3) shift; exec "$PYTHON" "$@" ;;
  *) exec "$@" ;;
esac
