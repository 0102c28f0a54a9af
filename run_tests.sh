#!/usr/bin/env bash
# Run the test suite (sets up .venv on first use). Extra arguments go to pytest, e.g. -k resume.
set -euo pipefail
cd "$(dirname "$0")"
source lib/setup_env.sh
exec python -m pytest "$@"
