"""How much the decode cache saves when a notebook loads its data: JPEG decode+resize vs cached arrays.

Within a notebook every epoch then reads the in-memory arrays, so decoding happens at most once
per run; the cache makes that once cheap for every later notebook and re-run.

    python benchmarks/cache_speedup.py [--data-root PATH] [--image-size 352] [--repeats 3]

Default data: the real Kvasir-SEG in ../shared/data/kvasir-seg when present (large JPEGs, where
the cache matters most), else the cpu profile's synthetic Kvasir-SEG tree. Prints the median
time of each and their ratio; nothing is asserted, the numbers are the result.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from helpers import paths
from helpers.data import ImageCache, load_samples, resolve_sources, scan_segmentation


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    real = paths.repo_root().parent / "shared" / "data" / "kvasir-seg"
    parser.add_argument("--data-root", default=str(real) if real.is_dir() else "")
    parser.add_argument("--image-size", type=int, default=352)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sources = resolve_sources(args.data_root, "cpu")
    samples, _ = scan_segmentation(sources.segmentation)
    with tempfile.TemporaryDirectory() as tmp:
        warm = ImageCache(Path(tmp))
        load_samples(samples, args.image_size, warm)  # fill the cache once
        decode_s = timed(lambda: load_samples(samples, args.image_size, ImageCache(None)), args.repeats)
        cached_s = timed(lambda: load_samples(samples, args.image_size, ImageCache(Path(tmp))), args.repeats)
    print(f"data: {sources.describe()} · {len(samples)} image/mask pairs at {args.image_size} px")
    print(f"decode JPEGs       : {decode_s:7.2f} s per load (median of {args.repeats})")
    print(f"from the cache     : {cached_s:7.2f} s per load (files still hashed: never stale)")
    print(f"speed-up           : {decode_s / cached_s:7.1f}x")


if __name__ == "__main__":
    main()
