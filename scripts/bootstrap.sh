# Sourced by run_all.sh and run_tests.sh: makes .venv with the locked
# dependencies, the package (editable) and a Jupyter kernel, once per lock.
# Needs only Python 3.11 on the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${COURSE_VENV:-$ROOT/.venv}"
KERNEL_NAME="colonoscopy-course"

find_python() {
  for cand in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "error: Python 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  py=$(find_python)
  echo ">> creating virtual environment $VENV"
  "$py" -m venv "$VENV"
fi
stamp="$VENV/.course-installed"
want=$(cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml" | "$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo ">> installing locked dependencies into $VENV (first run: a few minutes)"
  quiet_pip() {  # hide only this machine's notes about absent local mirrors
    "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "^WARNING: Location 'file://" || true; }
  }
  quiet_pip install -q --upgrade pip
  quiet_pip install -q -r "$ROOT/requirements.lock"
  quiet_pip install -q --no-deps -e "$ROOT"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name "$KERNEL_NAME" --display-name "Python 3.11 (colonoscopy course)" >/dev/null
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1  # no MPLBACKEND: kernels must keep the inline backend so figures show
