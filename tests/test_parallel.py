"""Runs side by side: the workers never outlive the run that started them."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "\nState:\tZ" not in status.read_text()  # a zombie has stopped; only its exit code is left
    except FileNotFoundError:
        return False


def test_workers_stop_when_the_run_that_started_them_is_killed(tmp_path):
    """An interrupted run (Ctrl-C on run_all.sh, a killed kernel) must not leave workers training on, unseen."""
    pids = tmp_path / "pids"
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, time
            from helpers import parallel

            def job(i, out):
                with open(out, "a") as f:
                    f.write(f"{{os.getpid()}}\\n")
                time.sleep(300)  # a long training run

            if __name__ == "__main__":
                parallel.run_all(job, [{{"i": 0}}, {{"i": 1}}, {{"i": 2}}], {{"out": {str(pids)!r}}}, "t", n_workers=2)
            """
        )
    )
    run = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            workers = [int(line) for line in pids.read_text().split()] if pids.exists() else []
        assert len(workers) == 2, "the workers did not start"
        run.kill()
        run.wait()
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, workers))
        assert len(pids.read_text().split()) == 2  # and no queued job started after the kill
    finally:
        run.kill()
        for pid in workers:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
