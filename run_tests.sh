#!/usr/bin/env bash
# Runs the test suite with the same set-up as run_all.sh. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/scripts/bootstrap.sh"
cd "$ROOT"
exec python -m pytest "$@"
