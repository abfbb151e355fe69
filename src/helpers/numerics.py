"""One numeric code path for course runs, so that a metric does not depend on which CPU computed it.

PyTorch's CPU kernels (oneDNN) pick their instructions from the CPU they run on
(AVX-512 here, AVX2 on many laptops) and split work over however many threads
there are. Both change the order of floating-point sums; training amplifies
the last-bit differences, and a U-Net trained for 4 epochs ended 0.016 Dice
apart on one machine with and without AVX-512. A course run therefore pins:

* oneDNN's instruction set to AVX2 (`ONEDNN_MAX_CPU_ISA`), which every x86-64
  CPU of the last decade has. OpenVINO's CPU plugin reads it too: under the
  pin its INT8 kernels are AVX2 ones (measured on this project's AVX-512 CPU:
  the cpu student's INT8 logits up to 0.37 apart from its AVX-512 kernels',
  and the INT8 segmenter 2.2x slower), and it can only compile with f32 inference precision
  (`runtime.compile_ir` asks for it; the default, bf16 on such a CPU, fails).
  Speed on the CPU's own instructions is measured in a child process without
  the pin (`unpinned_environment`, notebook 06);
* PyTorch's own vectorised kernels (sums, norms, optimizer steps) to AVX2
  (`ATEN_CPU_CAPABILITY`);
* MKL's conditional numerical reproducibility to its AVX2 branch (`MKL_CBWR`).
  MKL keeps its branches for Intel CPUs: on a lent Intel Xeon its vector
  `exp`, small matrix products and 3 x 3 inverse gave other last bits than on
  the AMD CPU that made the reference, and U-Nets trained with colour jitter
  and blur ended apart (a smoke run there: 22 of 102 metrics, within the
  tolerances). `MKL_CBWR=COMPATIBLE` is no way out: it moved the AMD CPU's
  own results (93 of 125 metrics of a `cpu` run). So the course's own code
  keeps such operations out of MKL (`helpers.augment`), and
  `scripts/numerics_probe.py` checks a CPU in seconds;
* NumPy's SIMD dispatch to AVX2 (`NPY_DISABLE_CPU_FEATURES`): its AVX-512
  `exp`/`sin`/`cos` round differently, and the embedded data generator wrote
  other bytes with them;
* the number of threads (the profile's `threads`), for PyTorch, OpenMP and MKL.

`benchmarks/numerics_cost.py` measures what this costs (training steps about
1.3-1.5x slower on an AVX-512 CPU) and shows that the result no longer moves
when the other libraries' instruction sets change.
`native` leaves every library to choose (faster; results then differ by CPU
within the tolerances `helpers.report` states). What is in effect is recorded
in every run manifest, and `verify` says when a reference was made otherwise.
"""

from __future__ import annotations

import os

MODES = ("pinned", "native")
PINNED_ISA = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}  # NumPy 2.x's AVX-512 dispatch groups
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "COURSE_THREADS")
# A CPU without AVX-512, emulated on one that has it, for what the pin leaves to the libraries (MKL's own
# instruction choice) — the benchmark and the cross-code-path test.
AVX2_ONLY = {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}
RECORDED = (*PINNED_ISA, *THREAD_VARIABLES, "COURSE_NUMERICS", "MKL_ENABLE_INSTRUCTIONS")


def environment(mode: str, threads: int | None) -> dict[str, str]:
    """Environment variables that put a notebook kernel on the `mode` code path (set before torch loads)."""
    if mode not in MODES:
        raise ValueError(f"unknown numerics mode {mode!r}; choose one of {', '.join(MODES)}")
    env = {"COURSE_NUMERICS": mode}
    if mode == "pinned":
        env |= PINNED_ISA
        if threads:
            env |= {name: str(threads) for name in THREAD_VARIABLES}
    return env


def apply(mode: str, threads: int | None) -> dict[str, str]:
    """Set `environment(mode, threads)` in this process (inherited by the kernels it starts); drops stale pins."""
    env = environment(mode, threads)
    for name in (*PINNED_ISA, *THREAD_VARIABLES):
        if name not in env and os.environ.get("COURSE_NUMERICS") == "pinned":
            os.environ.pop(name, None)  # left over from a pinned parent: not ours to keep in native mode
    os.environ.update(env)
    return env


def pinned_isa() -> bool:
    """Whether this process runs under any of the instruction-set pins (a pinned course run, or a user's shell)."""
    return any(name in os.environ for name in PINNED_ISA)


def code_path() -> str:
    """The instruction sets this process's speeds are measured on, for the caption of a speed table or figure."""
    return "pinned code path (AVX2 kernels: helpers.numerics)" if pinned_isa() else "the CPU's own instructions"


def unpinned_environment() -> dict[str, str]:
    """This process's environment without the instruction-set pins (threads kept): a child process started with it
    runs on every instruction set the CPU has, as a deployment would. For speed, never for a metric."""
    return {name: value for name, value in os.environ.items() if name not in PINNED_ISA}


def threads() -> int:
    """CPU threads a notebook uses: the pinned count of a course run, else every core."""
    return int(os.environ.get("COURSE_THREADS") or os.cpu_count() or 1)


def cpu_flags() -> list[str]:
    """The vector instruction sets this CPU offers (x86 Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted({f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))})


def describe() -> dict:
    """What code path this process computes on: the recorded variables, threads and CPU instruction sets."""
    return {
        "mode": os.environ.get("COURSE_NUMERICS", "native"),
        "threads": threads(),
        "variables": {name: os.environ[name] for name in RECORDED if name in os.environ},
        "cpu_flags": cpu_flags(),
    }
