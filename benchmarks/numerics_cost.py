"""What pinning the CPU code path costs, and whether it makes results independent of the CPU's instruction sets.

The trust issue: one U-Net trained with PyTorch's default kernels and with
oneDNN capped at AVX2 ended 0.016 test Dice apart on the same machine. This
script trains the course's U-Net (notebook 04's builder and loss, seeded,
fixed batches) for a few steps in fresh processes, one per code path, and
prints the time per step and a digest of the trained weights:

* `native`: every library picks its fastest instructions (AVX-512 here);
* `pinned`: what `./run_all.sh` sets (helpers.numerics: oneDNN, ATen, MKL and
  NumPy at AVX2, fixed threads);
* `pinned, emulated AVX2-only CPU`: the same, with MKL's own instruction choice
  also capped at AVX2, as on a CPU without AVX-512;
* `pinned, another thread count`: why the thread count is pinned too.

It also generates a little embedded data under each NumPy dispatch, and runs
one OpenVINO FP32 inference pinned and native, to say whether OpenVINO
follows the pin.

Ends with `pinned cost X.XX (pinned / native time per step) · identical
across instruction sets: yes|no`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from helpers import numerics

STEP = r"""
import hashlib, os, sys, time
import numpy as np, torch
torch.set_num_threads(int(os.environ.get("COURSE_THREADS") or os.cpu_count()))
from helpers import segment
torch.manual_seed(0)
rng = np.random.default_rng(0)
x = torch.tensor(rng.standard_normal((64, 3, 64, 64)), dtype=torch.float32)
y = torch.tensor(rng.random((64, 1, 64, 64)) > 0.7, dtype=torch.float32)
model = segment.build("unet", "resnet18")
opt = torch.optim.AdamW(model.parameters(), 2e-3)
loss_fn = segment.loss_fn("dice_bce")
steps, warm = int(sys.argv[1]), 3
for i in range(steps + warm):
    if i == warm:
        start = time.perf_counter()
    b = slice((i * 16) % 64, (i * 16) % 64 + 16)
    opt.zero_grad()
    loss_fn(model(x[b]), y[b]).backward()
    opt.step()
ms = (time.perf_counter() - start) / steps * 1e3
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:16]
print(f"{ms:.1f} {digest}")
"""

GENERATOR = r"""
import hashlib, sys, tempfile
from pathlib import Path
from helpers.data import synthetic
root = synthetic.generate(Path(tempfile.mkdtemp()) / "d", 12, 12, 12, seed=0, workers=1)
h = hashlib.sha256()
for p in sorted(root.rglob("*")):
    if p.is_file():
        h.update(p.read_bytes())
print(h.hexdigest()[:16])
"""

OPENVINO = r"""
import hashlib, tempfile
from pathlib import Path
import numpy as np, openvino as ov, torch
from helpers import segment
torch.manual_seed(0)
model = segment.build("unet", "resnet18").eval()
with torch.no_grad():
    ir = ov.convert_model(model, example_input=torch.zeros(1, 3, 64, 64), input=[(1, 3, 64, 64)])
compiled = ov.Core().compile_model(ir, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2})
x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
print(hashlib.sha256(compiled(x)[0].tobytes()).hexdigest()[:16])
"""


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any course pin, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in numerics.RECORDED}
    return env | extra


def run(code: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per code path")
    parser.add_argument("--threads", type=int, default=2, help="the pinned thread count (the cpu profile's)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the timed pair, for a fair time")
    args = parser.parse_args()
    pinned = numerics.environment("pinned", args.threads)
    native = numerics.environment("native", None) | {
        "OMP_NUM_THREADS": str(args.threads),
        "COURSE_THREADS": str(args.threads),
    }
    paths = {
        "native": native,
        "pinned": pinned,
        "pinned, emulated AVX2-only CPU": pinned | numerics.AVX2_ONLY,
        "pinned, 1 thread": numerics.environment("pinned", 1),
    }
    print(
        f"U-Net-R18, 64 px, batch 16, {args.steps} AdamW steps per process; CPU flags: "
        f"{' '.join(f for f in numerics.cpu_flags() if f.startswith('avx'))}\n"
    )
    times: dict[str, list[float]] = {name: [] for name in paths}
    digests: dict[str, str] = {}
    for r in range(args.rounds):
        for name, env in paths.items():
            if r and name not in ("native", "pinned"):
                continue  # only the timed pair is repeated
            ms, digest = run(STEP, clean_env(env), str(args.steps)).split()
            times[name].append(float(ms))
            digests.setdefault(name, digest)
            if digests[name] != digest:
                digests[name] = "NOT REPEATABLE"
    print(f"{'code path':<34}{'ms/step':>9}  weights digest")
    for name in paths:
        print(f"{name:<34}{min(times[name]):>9.1f}  {digests[name]}")
    gen_pinned, gen_native = run(GENERATOR, clean_env(pinned)), run(GENERATOR, clean_env(native))
    print(
        f"\nembedded data generator (72 files), digest of the bytes: pinned {gen_pinned}, native {gen_native} -> "
        + ("NumPy's instruction set changes the data" if gen_pinned != gen_native else "the same bytes")
    )
    ov_pinned = run(OPENVINO, clean_env(pinned))
    ov_native = run(OPENVINO, clean_env(native))
    print(
        f"\nOpenVINO FP32 U-Net output digest: pinned {ov_pinned}, native {ov_native} -> "
        + (
            "OpenVINO follows the oneDNN pin"
            if ov_pinned != ov_native
            else "no difference between the two (OpenVINO's kernels do not move with the pin here)"
        )
    )
    identical = digests["pinned"] == digests["pinned, emulated AVX2-only CPU"] != "NOT REPEATABLE"
    threads_matter = digests["pinned"] != digests["pinned, 1 thread"]
    print(
        f"native vs pinned weights: {'identical' if digests['native'] == digests['pinned'] else 'different'} "
        "(the instruction set changes the result); "
        f"thread count changes the result: {'yes' if threads_matter else 'no'}"
    )
    cost = min(times["pinned"]) / min(times["native"])
    print(
        f"\npinned cost {cost:.2f} (pinned / native time per step) · identical across instruction sets: "
        f"{'yes' if identical else 'no'}"
    )
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
