#!/usr/bin/env bash
# Runs the whole course headlessly: set-up on first use, then every notebook in
# order with Papermill. `./run_all.sh --help` lists the options.
set -euo pipefail
source "$(dirname "$0")/scripts/bootstrap.sh"
exec python -m helpers run "$@"
