#!/usr/bin/env bash
# Run packages' tests as a user of their sdist would: build the sdist and wheel, unpack the sdist,
# install the wheel (its workspace dependencies from the same build) with pytest, hypothesis and
# the tests' optional imports in a fresh venv, and run pytest in the unpacked tests folder, with
# no workspace conftest.py, pytest settings or THREEDSR_* variables. The third-party versions are
# the locked ones (uv's cache after `uv sync` serves them).
#
#   bash tools/standalone_check.sh                 # every package under packages/
#   bash tools/standalone_check.sh pcprep admetrics
#   PYTEST_ARGS="-x -k real" bash tools/standalone_check.sh pcprep
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
packages=("$@")
if [[ ${#packages[@]} -eq 0 ]]; then
  packages=($(cd packages && ls -d */ | tr -d /))
fi
# What the tests import beyond the package's own dependencies (pytest.importorskip aside).
declare -A EXTRA=(
  [admetrics]="scipy scikit-learn pillow"
  [depthsim]="scipy pillow"
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/threedsr-standalone.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
uv export --frozen --all-packages --all-groups --no-emit-workspace --no-hashes \
  --format requirements.txt -q >"$WORK/constraints.txt"
for dir in packages/*/; do
  uv build -q --package "$(basename "$dir")" -o "$WORK/dist"
done

status=0
for pkg in "${packages[@]}"; do
  printf '\n== %s\n' "$pkg"
  sdist=("$WORK"/dist/"$pkg"-*.tar.gz)
  wheel=("$WORK"/dist/"$pkg"-*.whl)
  mkdir -p "$WORK/src-$pkg"
  tar xzf "${sdist[0]}" -C "$WORK/src-$pkg"
  uv venv -q --python "$ROOT/.venv/bin/python" "$WORK/venv-$pkg"
  # shellcheck disable=SC2086
  uv pip install -q --python "$WORK/venv-$pkg/bin/python" -c "$WORK/constraints.txt" \
    --find-links "$WORK/dist" "${wheel[0]}" pytest hypothesis ${EXTRA[$pkg]:-}
  (
    cd "$WORK/src-$pkg"/*/tests
    # shellcheck disable=SC2086
    env -u THREEDSR_REAL_DATA -u THREEDSR_CABLE_GLAND -u THREEDSR_CANDYCANE \
      OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" "$WORK/venv-$pkg/bin/python" -m pytest \
      -p no:cacheprovider --strict-markers -q -rs ${PYTEST_ARGS:-} .
  ) || status=1
done
exit $status
