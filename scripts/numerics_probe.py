"""Does this CPU compute what the reference CPU computes? Ten seconds instead of a whole run.

    python scripts/numerics_probe.py [--numerics pinned|native]

`verify` expects identical metrics from any x86-64 CPU with AVX2 under the
course's pin (`helpers.numerics`). MKL is the library the pin holds least: it
keeps its instruction branches for Intel CPUs, and on a lent Intel Xeon its
vector `exp`, its small batched matrix product and its 3 x 3 inverse gave
other last bits than on the AMD EPYC that made `reports/reference/`. Notebook
04's colour jitter and blur used all three, and a smoke run on the Xeon ended
22 of 102 metrics apart (all from U-Nets trained with them, within the
tolerances); they now use PyTorch's own kernels (`helpers.augment`).

This script runs those MKL operations and the two augmentations on seeded
inputs under the pin and prints a digest of each result next to the one the
reference machine printed. The augmentations must read `same` everywhere; an
MKL line reading `DIFFERS` says that this CPU's MKL computes otherwise than
the reference machine's, so whatever still goes through it (PyTorch's
`Linear` layers, for one) may end a run in other last digits.
"""

from __future__ import annotations

import argparse
import hashlib
import sys

from helpers import numerics

# Digests printed on the reference machine (AMD EPYC, 2 cores, AVX-512; the lock file's versions; pinned).
REFERENCE = {
    "exp": "4aa4eb379d3e",
    "log": "9f1fabf8c564",
    "batched 3x3 product": "ade1e514c7ef",
    "3x3 inverse": "4254813736fb",
    "colour jitter": "340c4c5b94f6",
    "blur": "6315c22ac7f2",
}


def digest(tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest()[:12]


def probe() -> dict[str, str]:
    """Each operation on seeded inputs -> the digest of its result's bytes."""
    import torch

    from helpers import augment

    g = torch.Generator().manual_seed(1)
    torch.rand(16, 5, generator=g)  # the stream as the probe on the Xeon drew it, so that its digests compare
    big = torch.rand(8, 3, 64, 64, generator=g)
    matrices = torch.rand(8, 3, 3, generator=g)
    frames = torch.randint(0, 256, (16, 3, 64, 64), generator=torch.Generator().manual_seed(0)).float() / 255
    return {
        "exp": digest(torch.exp(big)),
        "log": digest(torch.log(big + 0.1)),
        "batched 3x3 product": digest(torch.bmm(matrices, big.reshape(8, 3, -1))),
        "3x3 inverse": digest(torch.linalg.inv(augment._RGB_TO_YIQ)),
        "colour jitter": digest(augment._colour(frames, 1.0, torch.Generator().manual_seed(2))),
        "blur": digest(augment._blur(frames, 1.0, torch.Generator().manual_seed(3))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--numerics", choices=numerics.MODES, default="pinned")
    args = parser.parse_args()
    numerics.apply(args.numerics, 2)  # before torch loads, as a course run does (the profiles' 2 threads)
    import torch

    torch.set_num_threads(2)
    found = probe()
    print(f"numerics: {args.numerics}; CPU flags: {' '.join(numerics.cpu_flags())}")
    for name, value in found.items():
        verdict = "same" if value == REFERENCE[name] else "DIFFERS"
        print(f"  {name:<20} {value}  reference {REFERENCE[name]}  {verdict}")
    differing = [name for name, value in found.items() if value != REFERENCE[name]]
    print(
        "every operation gives the reference machine's bits"
        if not differing
        else f"{len(differing)} operation(s) differ from the reference machine: identical metrics are not to be "
        "expected here, only agreement within verify's tolerances"
    )
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
