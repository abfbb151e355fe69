"""What a model costs: parameters, weight size, multiply-accumulates and CPU latency.

Notebooks 03, 05 and 06 compare models by these numbers, so they are measured
one way everywhere. MACs come from PyTorch's own FLOP counter (one MAC = two
FLOPs); latency is the median of timed single-image forward passes after a
warm-up, on a stated number of threads.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def weights_mb(model: nn.Module) -> float:
    """Size of the state dict (parameters and buffers) in MB (10^6 bytes), as stored in FP32."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


@torch.no_grad()
def macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass on an input of `input_shape` (batch included)."""
    model.eval()
    x = torch.zeros(input_shape, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def time_call(fn: Callable[[], object], repeats: int = 30, warmup: int = 5) -> dict[str, float]:
    """Median and 90th-percentile wall time (ms) of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "repeats": repeats}


@torch.inference_mode()
def latency_ms(
    model: nn.Module, input_shape: tuple[int, ...], repeats: int = 30, warmup: int = 5, threads: int | None = None
) -> dict[str, float]:
    """Median and 90th-percentile wall time (ms) of a forward pass, eager PyTorch on CPU.

    Times a copy, so the caller's model stays on its device (a GPU in `full`).
    """
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        model = copy.deepcopy(model).eval().cpu()
        x = torch.randn(input_shape)
        return {**time_call(lambda: model(x), repeats, warmup), "threads": torch.get_num_threads()}
    finally:
        torch.set_num_threads(previous)


def cost_row(name: str, model: nn.Module, image_size: int, repeats: int = 30, threads: int | None = None) -> dict:
    """One row of a size/speed table for a 3-channel model at batch 1."""
    shape = (1, 3, image_size, image_size)
    lat = latency_ms(model, shape, repeats=repeats, threads=threads)
    return {
        "model": name,
        "parameters_M": parameter_count(model) / 1e6,
        "weights_MB": weights_mb(model),
        "MMACs": macs(model, shape) / 1e6,
        "latency_median_ms": lat["median_ms"],
        "latency_p90_ms": lat["p90_ms"],
        "threads": lat["threads"],
    }
