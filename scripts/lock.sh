#!/usr/bin/env bash
# Re-resolve requirements.in into requirements.lock (exact pins) and mirror it
# into environment.yml. Run by a maintainer when a dependency changes; the
# course's users only ever install from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -r requirements.in
"$tmp/venv/bin/pip" freeze --exclude-editable | "$tmp/venv/bin/python" scripts/write_lock.py
