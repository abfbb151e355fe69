"""scripts/numerics_probe.py: the ten-second check of whether a CPU computes the reference machine's bits."""

import subprocess
import sys
from pathlib import Path

from helpers import numerics

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "numerics_probe.py"


def test_colour_jitter_and_blur_keep_out_of_mkl():
    # MKL's exp, small matrix products and inverse gave other last bits on an Intel CPU than on the reference's AMD
    # one (the probe's docstring): the augmentations use PyTorch's own elementwise kernels and softmax instead
    import torch
    from torch.profiler import ProfilerActivity, profile

    from helpers import augment

    frames = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        augment._colour(frames, 1.0, torch.Generator().manual_seed(1))
        augment._blur(frames, 1.0, torch.Generator().manual_seed(2))
    called = {event.key for event in prof.key_averages()}
    assert not called & {"aten::exp", "aten::bmm", "aten::einsum", "aten::linalg_inv", "aten::linalg_inv_ex"}, called
    assert "aten::_softmax" in called  # the blur's weights


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
