#!/usr/bin/env bash
# Lints, checks the formatting, then runs the test suite, with the same set-up as run_all.sh.
# Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "$0")/scripts/bootstrap.sh"
cd "$ROOT"
ruff check --quiet . && ruff format --check --quiet .  # settings in pyproject.toml
exec python -m pytest "$@"
