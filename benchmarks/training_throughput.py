"""Does notebook 04's training loop keep up with the model? Images per second, side by side in one run.

For the ablation's `none` and full `+ copy-paste` rows, this times one epoch
of the course's own loop (`segment.train_epoch` over `augment.SegmentationBatches`:
shuffling, copy-paste, batched augmentation and all) against one epoch of the
same model's training step on batches already in memory as normalised tensors
(no data work at all). Epochs alternate between the two so that a slower
stretch of the machine hits both; the median of `--repeats` is reported.

The U-Net-ResNet18 at the `cpu` profile's 64 px, batch size and 2 threads is
the default. Ends with `ratio none X.XX · full Y.YY` (course loop / bare step,
target ≥ 0.9 for both).

    .venv/bin/python benchmarks/training_throughput.py [--frames 160] [--repeats 3] [--channels-last]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from helpers import augment, data, segment
from helpers.profiles import get_profile


def frames(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic colonoscopy frames with 1-3 polyps, drawn by the course's generator, at the training size."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, masks = [], []
    for i in range(n):
        frame = data.render_frame(rng, 160, 160, n_polyps=1 + i % 3)
        images.append(np.asarray(Image.fromarray(frame.image).resize((size, size), Image.BILINEAR)))
        masks.append(np.asarray(Image.fromarray(frame.mask).resize((size, size), Image.NEAREST)))
    return np.stack(images), np.stack(masks)


def preloaded(
    images: np.ndarray, masks: np.ndarray, batch_size: int, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The same frames as ready batches: what the step would see if data cost nothing."""
    x, y = augment.augment_batch(
        torch.from_numpy(images).permute(0, 3, 1, 2),
        torch.from_numpy(masks)[:, None],
        [],
        0.0,
        torch.Generator().manual_seed(seed),
    )
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return [
        (x[order[i : i + batch_size]], y[order[i : i + batch_size]])
        for i in range(0, len(x) - batch_size + 1, batch_size)
    ]


def main() -> None:
    prof = get_profile("cpu")
    seg = prof.params_for("04_segmentation_augmentation")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--image-size", type=int, default=prof.image_size)
    parser.add_argument("--batch-size", type=int, default=seg["seg_batch_size"])
    parser.add_argument("--threads", type=int, default=prof.threads)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--channels-last", action="store_true", help="model and batches in channels_last memory format")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, masks = frames(args.frames, args.image_size)
    model = segment.build(args.arch, seg["seg_encoder"])
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = segment.make_optimizer(model, seg["seg_optimizer"], seg["seg_lr"])
    criterion = segment.loss_fn(seg["seg_loss"])
    bare = [(x.to(memory_format=fmt), y) for x, y in preloaded(images, masks, args.batch_size, 0)]
    print(
        f"{args.arch}-{seg['seg_encoder']} · {args.frames} frames at {args.image_size} px · batch {args.batch_size} · "
        f"{args.threads} threads · torch {torch.__version__} · "
        f"{'channels_last' if args.channels_last else 'contiguous'}"
    )

    def epoch(batches) -> float:
        """Images per second of one `train_epoch` over `batches` (their production included)."""
        seen = []
        counted = ((seen.append(len(x)) or x.to(memory_format=fmt), y) for x, y in batches)
        start = time.perf_counter()
        segment.train_epoch(model, counted, opt, criterion)
        return sum(seen) / (time.perf_counter() - start)

    ratios = {}
    for row in ("none", "+ copy-paste"):
        loop = augment.SegmentationBatches(images, masks, augment.ABLATION[row], batch_size=args.batch_size, seed=0)
        epoch(loop), epoch(bare)  # warm-up: first calls allocate
        rates = {"course loop": [], "bare step": []}
        for _ in range(args.repeats):
            rates["course loop"].append(epoch(loop))
            rates["bare step"].append(epoch(bare))
        med = {k: statistics.median(v) for k, v in rates.items()}
        ratios[row] = med["course loop"] / med["bare step"]
        print(
            f"row {row!r:<15} course loop {med['course loop']:6.1f} img/s · bare step {med['bare step']:6.1f} img/s · "
            f"ratio {ratios[row]:.2f}  (each the median of {args.repeats} epochs)"
        )
    print(f"ratio none {ratios['none']:.2f} · full {ratios['+ copy-paste']:.2f}")


if __name__ == "__main__":
    main()
