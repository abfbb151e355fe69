"""Do independent training runs finish sooner side by side, one thread each, than one after another on every thread?

Times the same grid of notebook 03 student runs and notebook 04 segmentation
runs two ways in one process: one after another with all `--threads` threads
(how the course trained before `helpers.parallel`), and side by side in
`--threads` worker processes of one thread each (how it trains now). It also
checks the claim that makes the second way safe: the weights a run ends
with do not depend on how many workers ran the grid (one worker, here, vs
several). Sizes are the `cpu` profile's (64 px, its batch sizes). Ends with
`side by side / one after another: classification X.XX · segmentation Y.YY`
(speed-up; above 1 means side by side is faster).

    .venv/bin/python benchmarks/parallel_runs.py [--runs 4] [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from training_throughput import frames

from helpers import classify, parallel, segment
from helpers.profiles import get_profile


def one_after_another(fn, jobs: list[dict], shared: dict, threads: int) -> tuple[float, list]:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    done = [fn(**shared, **job) for job in jobs]
    return time.perf_counter() - start, done


def side_by_side(fn, jobs: list[dict], shared: dict, workers: int) -> tuple[float, list]:
    start = time.perf_counter()
    done = parallel.run_all(fn, jobs, shared, desc="side by side", n_workers=workers)
    return time.perf_counter() - start, done


def same_weights(a: list, b: list) -> bool:
    return all(all(torch.equal(x[1][k], y[1][k]) for k in x[1]) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4, help="runs per grid")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="threads one after another; workers side by side")
    args = parser.parse_args()
    cpu = get_profile("cpu")
    size = cpu.image_size
    rng = np.random.default_rng(0)
    images, masks = frames(320, size)  # about the cpu profile's train split: 9 classifier steps per epoch
    labels = rng.integers(0, 3, len(images))
    splits = {
        "train": (images[:280], labels[:280]),
        "val": (images[280:], labels[280:]),
        "test": (images[280:], labels[280:]),
    }
    kd = cpu.notebook_params["03_knowledge_distillation"]
    grids = {
        "classification": (
            classify._train_student,
            [
                dict(student="resnet10t", budget=1.0, method="scratch", temperature=None, seed=s)
                for s in range(args.runs)
            ],
            dict(
                splits=splits,
                classes=["a", "b", "c"],
                teachers={},
                transfer_images=images,
                label_seed=0,
                epochs=args.epochs,
                lr=kd["student_lr"],
                batch_size=cpu.batch_size,
                image_size=size,
                alpha=0.7,
                class_weighted=True,
            ),
        ),
        "segmentation": (
            segment._train_one,
            [
                {
                    "cfg": {"arch": "unet", "encoder": "resnet18", "augmentation": "+ copy-paste", "init": "random"},
                    "seed": s,
                }
                for s in range(args.runs)
            ],
            dict(
                data={"train": (images[:160], masks[:160]), "val": (images[280:], masks[280:])},
                epochs=args.epochs,
                lr=2e-3,
                batch_size=8,
                loss="dice_bce",
                optimizer="adamw",
                encoder_weights=None,
            ),
        ),
    }
    ratios = {}
    for name, (fn, jobs, shared) in grids.items():
        serial_s, _ = one_after_another(fn, jobs, shared, args.threads)
        parallel_s, done = side_by_side(fn, jobs, shared, args.threads)
        _, alone = side_by_side(fn, jobs[:2], shared, 1)
        ratios[name] = serial_s / parallel_s
        print(
            f"{name}: {len(jobs)} runs of {args.epochs} epochs · one after another ({args.threads} threads) "
            f"{serial_s:.1f} s · side by side ({args.threads} workers x 1 thread) {parallel_s:.1f} s · "
            f"same weights with 1 worker and {args.threads}: {'yes' if same_weights(done[:2], alone) else 'NO'}"
        )
    print(
        f"side by side / one after another: classification {ratios['classification']:.2f} · "
        f"segmentation {ratios['segmentation']:.2f}"
    )


if __name__ == "__main__":
    main()
