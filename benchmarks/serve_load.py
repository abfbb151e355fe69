"""What HTTP costs: the INT8 segmenter called in process vs through `python -m helpers serve`, under load.

    python benchmarks/serve_load.py [--model reports/cpu/06_deploy/ir/segmenter_int8.xml] [--frame FILE] [--seconds 8]
                                    [--workers auto|N]

Side by side in one run, for 1, 4 and 16 concurrent clients, each for a fixed
time: requests per second, p50 / p99 latency and errors, the two modes taking
turns in `--rounds` rounds (so that a slow spell of a shared machine falls on
both alike). In process, each
client thread calls what the endpoint calls (decode the uploaded frame, resize,
infer on the shared pool of infer requests, encode the mask PNG); over HTTP,
each client thread posts the same file as a multipart upload to a server
started as a separate process (uvicorn, `--workers` processes as the server
itself would start: by default one per 4 CPUs), on the same CPUs. The
frame is the one notebook 06 sends, the first in-centre test frame of the
run (a JPEG as a client would send it), unless `--frame` names another. The
server's resident memory (all its processes) is read before and after the
load: it must stay flat. Ends with `http/in-process throughput at 4 clients: X.XX`; the target
(issue 15) is at least 0.80 with no errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers import course, numerics, paths, serve, tables

CLIENTS, TARGET = serve.THROUGHPUT_TARGET


def course_frame(profile: str) -> Path:
    """The frame notebook 06 sends its server: the first test frame of the run's segmentation split."""
    from helpers.data import split_samples

    return split_samples("segmentation", "test", profile)[1][0].image


def rss_mb(pid: int) -> float:
    """Resident memory of the server: its process and every worker process it started."""
    import psutil

    server = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [server, *server.children(recursive=True)]) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = paths.stage_dir("cpu", course.DEPLOY, create=False) / "ir" / "segmenter_int8.xml"
    parser.add_argument("--model", default=str(default), help="an IR of notebook 06 (default: the cpu INT8 segmenter)")
    parser.add_argument("--frame", help="the image every request sends (default: notebook 06's, a cpu test frame)")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time per setting, over all rounds")
    parser.add_argument("--rounds", type=int, default=4, help="turns each mode takes per client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--workers", type=serve.worker_count, default="auto", help="server processes (default: as the server's)"
    )
    args = parser.parse_args()
    workers = args.workers
    model = Path(args.model)
    if not model.is_file():
        print(f"error: {model} is missing: run ./run_all.sh (notebook 06 writes it) or pass --model", file=sys.stderr)
        return 2
    frame = Path(args.frame) if args.frame else course_frame("cpu")
    png = frame.read_bytes()
    served = serve.load_models([model])[model.stem]
    with serve.background([model], workers=workers) as (url, server):
        serve.http_vs_in_process(url, served, png, args.clients, 1.0)  # warm-up: every thread count, both paths
        memory_before = rss_mb(server.pid)
        table = serve.http_vs_in_process(url, served, png, args.clients, args.seconds, args.rounds)
        memory_after = rss_mb(server.pid)
    print(
        f"{model.name} ({serve.runtime.precision_label(served.card)}), {frame} ({len(png) / 1e3:.0f} kB) per request, "
        f"{args.seconds:g} s per setting in {args.rounds} rounds; {serve.cpus()} CPUs, server: {workers} worker "
        f"process{'es' if workers > 1 else ''}; {numerics.code_path()}\n"
    )
    print(tables.rounded(table, 2).to_string(index=False))
    print(
        f"\nerrors: {int(table['errors'].sum())} · server memory {memory_before:.0f} MB after a warm-up at every "
        f"client count, {memory_after:.0f} MB after {int(table['requests'].sum())} more requests "
        f"({memory_after - memory_before:+.0f} MB)"
    )
    at = table[
        (table["mode"] == "HTTP") & (table["clients"] == (CLIENTS if CLIENTS in args.clients else args.clients[0]))
    ].iloc[0]
    met = serve.target_met(table)
    verdict = {
        True: f"meets the target {TARGET:.2f} with no errors",
        False: f"misses the target {TARGET:.2f} with no errors",
        None: f"not judged: the target, {TARGET:.2f}, is at {CLIENTS} clients",
    }[met]
    print(f"http/in-process throughput at {at['clients']} clients: {at['HTTP / in process']:.2f} ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
