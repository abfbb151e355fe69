"""Which INT8 recipe keeps the course's deployed student closest to its FP32 self? Measured on the VALIDATION split.

    python benchmarks/int8_recipes.py [--profile cpu]

Compares, side by side in one run, NNCF post-training quantization of notebook 03's deployed
student with fast (NNCF's default) or full bias correction, with and without accuracy control, on the
profile's calibration frames (train split). For each recipe: the mean total-variation distance between
the INT8 and FP32 class probabilities on the validation frames (0 = identical), the decisions INT8
changes there, and the batch-1 latency. The test split is not read: this is how the course chose its
recipe (`helpers.deploy.export`), so the test split stays an honest final check
(`benchmarks/openvino_speedup.py`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers import data, deploy
from helpers.profiles import get_profile
from helpers.training import extract_features

sys.path.insert(0, str(Path(__file__).parent))
from openvino_speedup import calibration_frames, student  # noqa: E402  (same checkpoint and frames as it scores)

RECIPES = {  # name: (fast bias correction, accuracy control)
    "fast bias correction (NNCF default)": (True, False),
    "fast bias correction + accuracy control": (True, True),
    "full bias correction": (False, False),
    "full bias correction + accuracy control (course)": (False, True),
}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="cpu", help="whose notebook 03 checkpoint and data to use (default cpu)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, index = student(args.profile)
    if index is None:
        print(f"no student checkpoint of notebook 03: run ./run_all.sh --profile {args.profile} --only 03 first")
        return 2
    params = get_profile(args.profile).params_for("06_openvino_deployment")
    size, classes = index["image_size"], index["classes"]
    train, _ = data.load_split("classification", "train", args.profile, image_size=size)
    val, _ = data.load_split("classification", "val", args.profile, image_size=size)
    calibration = calibration_frames(train.images, params)
    card = deploy.card("classification", classes, size, index["arch"], index["checkpoint"])
    fp32 = softmax(extract_features(model, val.images, desc="FP32"))
    print(
        f"{index['arch']} student {index['checkpoint']} ({args.profile}), {size} px; "
        f"{len(calibration)} calibration frames (train), {len(val.images)} validation frames; "
        f"accuracy control: agreement >= {1 - params['int8_max_drop']['classification']:.2f}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (fast, control)) in enumerate(RECIPES.items()):
            xml = deploy.export(
                model,
                card,
                Path(tmp) / str(i),
                "student",
                calibration,
                ("INT8",),
                val.images if control else None,
                params["int8_max_drop"]["classification"],
                fast_bias_correction=fast,
            )["INT8"]
            int8 = softmax(deploy.infer(deploy.compile_ir(xml, args.threads), val.images, card))
            speed = deploy.bench_openvino(xml, args.threads, repeats=50, requests=2, async_frames=50)
            rows.append(
                {
                    "recipe": name,
                    "val mean TV distance to FP32": 0.5 * np.abs(int8 - fp32).sum(1).mean(),
                    "val decisions changed": int((int8.argmax(1) != fp32.argmax(1)).sum()),
                    "median ms": speed["latency_median_ms"],
                }
            )
    table = pd.DataFrame(rows)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    best = table.loc[table["val mean TV distance to FP32"].idxmin(), "recipe"]
    print(f"\nclosest to FP32 on validation: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
