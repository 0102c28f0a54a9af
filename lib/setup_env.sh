# Sourced by run_all.sh and run_tests.sh (and by people: `source lib/setup_env.sh && jupyter lab`):
# create .venv with the pinned packages on first use, reuse it afterwards, and rebuild it when
# requirements.lock or pyproject.toml change. Leaves the venv activated. The caller's shell options
# are left as they were: the strict mode of the build runs in a subshell, so a failing command
# afterwards never closes the user's terminal. Returns non-zero when the venv cannot be built.
_mc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_mc_venv="${MASKCYCLE_VENV:-$_mc_root/.venv}"
(
  set -euo pipefail
  _python="${PYTHON:-python3.11}"
  command -v "$_python" >/dev/null 2>&1 || _python=python3
  _stamp_want="$(cat "$_mc_root/requirements.lock" "$_mc_root/pyproject.toml" | sha256sum | cut -c1-16)"
  _stamp_file="$_mc_venv/.maskcycle-stamp"
  if [ ! -x "$_mc_venv/bin/python" ] || [ "$(cat "$_stamp_file" 2>/dev/null)" != "$_stamp_want" ]; then
    echo "[setup] creating $_mc_venv with the pinned packages (first run: a few minutes)" >&2
    "$_python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else
        "maskcycle needs Python 3.11 (set PYTHON=/path/to/python3.11); found " + sys.version)'
    "$_python" -m venv --clear "$_mc_venv"  # a fresh venv: nothing left over from an older lock
    # (pip's notes about this machine's missing local index folders are noise; errors still show)
    "$_mc_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$_mc_root/requirements.lock" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    "$_mc_venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$_mc_root" 2>&1 \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
    # The Jupyter kernel that JupyterLab and papermill both use.
    "$_mc_venv/bin/python" -m ipykernel install --sys-prefix --name maskcycle --display-name "Python (maskcycle)" >/dev/null
    echo "$_stamp_want" > "$_stamp_file"
  fi
) || { echo "[setup] could not set up $_mc_venv (see above)" >&2; unset _mc_root _mc_venv; return 1; }
# shellcheck disable=SC1091
source "$_mc_venv/bin/activate"
export MPLBACKEND="${MPLBACKEND:-Agg}"
unset _mc_root _mc_venv
