"""scripts/numerics_probe.py: the ten-second check of whether a CPU computes the reference machine's bits."""

import subprocess
import sys
from pathlib import Path

from helpers import numerics

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "numerics_probe.py"


def test_the_pin_takes_mkls_compatible_branch_which_intel_and_amd_cpus_share():
    # MKL honours its other branches on Intel CPUs only: with AVX2 a Xeon's exp, inverse and batched product
    # differed from the AMD reference machine's (scripts/numerics_probe.py's docstring)
    assert numerics.environment("pinned", 2)["MKL_CBWR"] == "COMPATIBLE"
    assert "MKL_CBWR" not in numerics.environment("native", 2)


def test_the_probe_prints_one_verdict_per_operation_and_fails_exactly_when_one_differs():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if "  reference " in line]
    names = ["exp", "log", "batched 3x3 product", "3x3 inverse", "colour jitter", "blur"]
    assert [line.split("  ")[1].strip() for line in lines] == names, done.stdout + done.stderr
    assert all(line.endswith((" same", " DIFFERS")) for line in lines)
    differing = sum(line.endswith("DIFFERS") for line in lines)
    assert done.returncode == (1 if differing else 0), done.stdout
    assert ("every operation gives the reference machine's bits" in done.stdout) == (differing == 0)


def test_a_digest_other_than_the_reference_machines_is_named_and_fails_the_probe(monkeypatch, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("numerics_probe", SCRIPT)
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    monkeypatch.setattr(numerics, "apply", lambda *a: {})  # this test process keeps its own environment
    monkeypatch.setattr(sys, "argv", ["numerics_probe.py"])
    monkeypatch.setattr(probe, "probe", lambda: {**probe.REFERENCE, "exp": "000000000000"})
    assert probe.main() == 1
    printed = capsys.readouterr().out
    assert "000000000000  reference 4aa4eb379d3e  DIFFERS" in printed and printed.count("DIFFERS") == 1
    assert "1 operation(s) differ from the reference machine" in printed
