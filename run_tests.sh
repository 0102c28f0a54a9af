#!/usr/bin/env bash
# Run the test suite (sets up .venv on first use). Extra arguments go to pytest, e.g. -k resume.
set -euo pipefail
cd "$(dirname "$0")"
source lib/setup_env.sh
# The survey page test drives a real headless Chromium: on a fresh machine where we are root with
# apt-get (CI), install Debian's chromium once. MASKCYCLE_NO_BROWSER_INSTALL=1 skips this.
if [ "${MASKCYCLE_NO_BROWSER_INSTALL:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1 \
   && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's chromium for the browser test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "[setup] could not install chromium; the browser test will skip" >&2
fi
exec python -m pytest "$@"
