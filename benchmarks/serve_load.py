"""What HTTP costs: the INT8 segmenter called in process vs through `python -m helpers serve`, under load.

    python benchmarks/serve_load.py [--model reports/cpu/06_deploy/ir/segmenter_int8.xml] [--seconds 5]

Side by side in one run, for 1, 4 and 16 concurrent clients, each for a fixed
time: requests per second, p50 / p99 latency and errors. In process, each
client thread calls what the endpoint calls (decode the uploaded PNG, resize,
infer on the shared pool of infer requests, encode the mask PNG); over HTTP,
each client thread posts the same PNG as a multipart upload to a server
started as a separate process (uvicorn, one worker), on the same CPUs. The
server's resident memory is read before and after the load: it must stay
flat. Ends with `http/in-process throughput at 4 clients: X.XX`; the target
(issue 15) is at least 0.80 with no errors.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from helpers import course, paths, serve

TARGET = 0.80


def frame_png(size: int = 320, seed: int = 0) -> bytes:
    """A 320 x 320 noise frame as PNG: decoding the upload is part of every request's cost."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = paths.stage_dir("cpu", course.DEPLOY, create=False) / "ir" / "segmenter_int8.xml"
    parser.add_argument("--model", default=str(default), help="an IR of notebook 06 (default: the cpu INT8 segmenter)")
    parser.add_argument("--seconds", type=float, default=5.0, help="load time per setting")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    model = Path(args.model)
    if not model.is_file():
        print(f"error: {model} is missing: run ./run_all.sh (notebook 06 writes it) or pass --model", file=sys.stderr)
        return 2
    png = frame_png()
    served = serve.load_models([model])[model.stem]
    with serve.background([model]) as (url, server):
        serve.http_vs_in_process(url, served, png, args.clients, 1.0)  # warm-up: every thread count, both paths
        memory_before = rss_mb(server.pid)
        table = serve.http_vs_in_process(url, served, png, args.clients, args.seconds)
        memory_after = rss_mb(server.pid)
    print(
        f"{model.name} ({serve.deploy.precision_label(served.card)}), a {len(png) / 1e3:.0f} kB PNG per request, "
        f"{args.seconds:g} s per setting\n"
    )
    print(table.round(2).to_string(index=False))
    print(
        f"\nerrors: {int(table['errors'].sum())} · server memory {memory_before:.0f} MB after a warm-up at every "
        f"client count, {memory_after:.0f} MB after {int(table['requests'].sum())} more requests "
        f"({memory_after - memory_before:+.0f} MB)"
    )
    at = table[(table["mode"] == "HTTP") & (table["clients"] == (4 if 4 in args.clients else args.clients[0]))].iloc[0]
    verdict = "meets" if at["HTTP / in process"] >= TARGET and not table["errors"].any() else "misses"
    print(
        f"http/in-process throughput at {at['clients']} clients: {at['HTTP / in process']:.2f} "
        f"({verdict} the target {TARGET:.2f} with no errors)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
