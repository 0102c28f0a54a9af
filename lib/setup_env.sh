# Sourced by run_all.sh and run_tests.sh: create .venv with the pinned packages on first use,
# reuse it afterwards, and rebuild it when requirements.lock or pyproject.toml change.
# Leaves the venv activated.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${MASKCYCLE_VENV:-$_root/.venv}"
_python="${PYTHON:-python3.11}"
command -v "$_python" >/dev/null 2>&1 || _python=python3
_stamp_want="$(cat "$_root/requirements.lock" "$_root/pyproject.toml" | sha256sum | cut -c1-16)"
_stamp_file="$_venv/.maskcycle-stamp"
if [ ! -x "$_venv/bin/python" ] || [ "$(cat "$_stamp_file" 2>/dev/null)" != "$_stamp_want" ]; then
  echo "[setup] creating $_venv with the pinned packages (first run: a few minutes)" >&2
  "$_python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else
      "maskcycle needs Python 3.11 (set PYTHON=/path/to/python3.11); found " + sys.version)'
  "$_python" -m venv --clear "$_venv"  # a fresh venv: nothing left over from an older lock
  # (pip's notes about this machine's missing local index folders are noise; errors still show)
  "$_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$_root/requirements.lock" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  "$_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$_root" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  # The Jupyter kernel that JupyterLab and papermill both use.
  "$_venv/bin/python" -m ipykernel install --sys-prefix --name maskcycle --display-name "Python (maskcycle)" >/dev/null
  echo "$_stamp_want" > "$_stamp_file"
fi
# shellcheck disable=SC1091
source "$_venv/bin/activate"
export MPLBACKEND="${MPLBACKEND:-Agg}"
