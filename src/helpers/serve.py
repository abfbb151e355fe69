"""An HTTP service for notebook 06's OpenVINO IRs: `python -m helpers serve --model PATH.xml`.

Deployment is judged by latency, throughput and how a service treats bad
input, so the course serves its models the way a hospital system would call
them: JSON over HTTP (FastAPI + uvicorn), one compiled model shared by all
requests of a process through a pool of OpenVINO infer requests (inference
releases the GIL, so concurrent clients overlap), worker processes where the
CPUs outnumber what one GIL lets through, and a JSON error with a stable code
for every kind of bad input — never a crash, never a traceback. Uploaded
bytes are decoded in memory; nothing a client sends becomes a path.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import io
import json
import os
import queue
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.exceptions import HTTPException

from . import runtime
from .data.images import to_rgb8

MAX_BYTES = 20_000_000  # an upload larger than this is refused (a Kvasir frame is at most ~1 MB)
MAX_PIXELS = runtime.MAX_PIXELS
MAX_VIDEO_BYTES = 100_000_000
MAX_VIDEO_FRAMES = 900  # 30 s at 30 fps: a clip, not a procedure (video is slow: every frame is one inference)
MAX_VIDEO_SECONDS = 60.0
VIDEO_CONTAINERS = {"mov", "mp4", "avi", "matroska", "webm"}  # FFmpeg's demuxer names; a still image is no video
PROGRESS_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a client's name for one video job: a key, never a path
KEPT_JOBS = 100  # finished video jobs whose final progress a client can still read
THROUGHPUT_TARGET = (4, 0.80)  # HTTP / in-process throughput the service aims for, at this many clients (issue 15)

# Every error the service returns: code -> HTTP status. The README lists them.
ERRORS = {
    "empty_input": 400,
    "invalid_base64": 400,
    "invalid_request": 400,
    "unknown_model": 404,
    "not_found": 404,
    "too_large": 413,
    "not_an_image": 415,
    "unsupported_video": 415,
    "unsupported_media_type": 415,
    "corrupt_image": 422,
    "internal_error": 500,
}


# The multipart form both upload endpoints take (for the OpenAPI page at /docs).
UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary"}, "model": {"type": "string"}},
    "required": ["file"],
}


# The query of /v1/predict, for the OpenAPI page (the endpoint reads it itself: see predict_image).
QUERY_PARAMETERS = [
    {
        "name": "overlay",
        "in": "query",
        "schema": {"type": "boolean", "default": False},
        "description": "add the overlay",
    },
    {"name": "model", "in": "query", "schema": {"type": "string"}, "description": "a served model's name"},
]
FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


class ServeError(Exception):
    """A refused request: `code` (a key of ERRORS) and a message for the client."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message, self.status = code, message, ERRORS[code]


@dataclass
class Served:
    """One compiled IR and its pool of infer requests, shared by every request of the server."""

    name: str
    xml: Path
    card: dict
    compiled: Any
    pool: queue.Queue

    def infer(self, image: np.ndarray) -> np.ndarray:
        """Raw output for one uint8 frame already at the input size; blocks only while every request is busy."""
        request = self.pool.get()
        try:
            return request.infer({0: runtime.to_input(image[None], self.card)})[0].copy()
        finally:
            self.pool.put(request)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "task": self.card["task"],
            "classes": self.card["classes"],
            "input_size": self.card["input_size"],
            "architecture": self.card.get("architecture"),
            "precision": runtime.precision_label(self.card),
            "infer_requests": self.pool.maxsize,
        }


def check_models(xmls: list[Path]) -> dict[str, tuple[Path, dict]]:
    """Each IR's file and card, checked before anything is compiled; named by the file's stem."""
    checked: dict[str, tuple[Path, dict]] = {}
    for xml in map(Path, xmls):
        if xml.suffix != ".xml" or not xml.is_file() or not xml.with_suffix(".bin").is_file():
            raise ValueError(f"{xml}: expected an OpenVINO IR .xml with its .bin next to it")
        if xml.stem in checked:
            raise ValueError(f"{xml}: two models named {xml.stem!r}; each --model needs its own file name")
        checked[xml.stem] = (xml, runtime.check_card(xml))
    if not checked:
        raise ValueError("no model to serve: pass --model PATH.xml at least once")
    return checked


def load_models(xmls: list[Path], threads: int | None = None) -> dict[str, Served]:
    """Check each IR against its card and compile it once (throughput hint); named by the file's stem."""
    models: dict[str, Served] = {}
    for name, (xml, card) in check_models(xmls).items():
        compiled = runtime.compile_ir(xml, threads, hint="THROUGHPUT")
        n = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        pool: queue.Queue = queue.Queue(maxsize=n)
        blank = np.zeros((1, card["input_size"], card["input_size"], 3), np.uint8)
        for _ in range(n):
            request = compiled.create_infer_request()
            # One inference here, on one thread, before any client: OpenVINO's Python binding initialises
            # static data on its first call, and concurrent first calls can deadlock on that and the GIL
            # (measured: a fresh server hung under concurrent first requests; tests/test_serve.py).
            request.infer({0: runtime.to_input(blank, card)})
            pool.put(request)
        models[name] = Served(name, xml, card, compiled, pool)
    return models


def cpus() -> int:
    """The CPUs this process may run on (a `taskset` or a container's limit, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_workers() -> int:
    """Server processes for `--workers auto`: one per 4 CPUs, at least one.

    One Python process serves at most what its GIL lets through: measured on a
    16-CPU machine (benchmarks/serve_load.py), one process reached 0.62-0.67 of
    the in-process throughput at 4 clients, 4 processes 0.79-0.84 and at 16
    clients 2.1-2.6 times the in-process throughput. On 2 busy CPUs a second
    process costs more than it gains (0.59 against 0.68), so it stays one.
    """
    return max(1, cpus() // 4)


def worker_count(text: str) -> int:
    """`--workers` as given on a command line (the server's and the benchmark's): a count of 1 or more, or 'auto'."""
    if text == "auto":
        return auto_workers()
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: a number of processes (1 or more) or 'auto'")
    return int(text)


class Job(dict):
    """One video job's progress; every change is written to its file at once, where any worker reads it."""

    def __init__(self, path: Path, **state: Any):
        super().__init__(**state)
        self.path = path
        self._write()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._write()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._write()

    def _write(self) -> None:
        part = self.path.with_suffix(f".{threading.get_ident()}.part")
        part.write_text(json.dumps(self))
        os.replace(part, self.path)  # a reader sees the old state or the new one, never half a file


def _written(path: Path) -> int:
    """When a file was last written (ns); 0 for one another worker has just removed."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class Jobs:
    """Video jobs' progress by the client's progress_id, shared by every worker process of one server.

    With `--workers N` the request that polls /v1/progress may reach another
    process than the one drawing the video, so each job is a small JSON file
    in a folder the server owns, named by a digest of the id: a client's id
    never becomes a path. The newest `kept` jobs stay readable.
    """

    def __init__(self, folder: Path, kept: int = KEPT_JOBS):
        self.folder, self.kept = Path(folder), kept

    def _path(self, progress_id: str) -> Path:
        return self.folder / (hashlib.sha256(progress_id.encode()).hexdigest()[:32] + ".json")

    def start(self, progress_id: str) -> Job:
        job = Job(self._path(progress_id), progress_id=progress_id, state="uploading", frames_done=0, frames_total=None)
        done = sorted(self.folder.glob("*.json"), key=_written)
        for old in done[: max(0, len(done) - self.kept)]:
            old.unlink(missing_ok=True)  # the oldest jobs' progress is no longer asked for
        return job

    def get(self, progress_id: str) -> dict | None:
        try:
            return json.loads(self._path(progress_id).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str]:
    """Upload bytes -> 8-bit RGB at full resolution and a note on any conversion, or a ServeError with its code."""
    if not data:
        raise ServeError("empty_input", "the upload is empty (0 bytes)")
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ServeError("not_an_image", "not an image: the bytes are no image format Pillow knows") from None
    except Image.DecompressionBombError as exc:
        raise ServeError("too_large", f"image refused: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ServeError("corrupt_image", f"corrupt image ({exc})") from None
    w, h = im.size
    if w * h > max_pixels:
        raise ServeError(
            "too_large", f"image is {w}x{h} = {w * h / 1e6:.2f} MP, over the limit of {max_pixels / 1e6:g} MP"
        )
    mode = im.mode
    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ServeError("corrupt_image", f"corrupt or truncated image ({exc})") from None
    return np.asarray(to_rgb8(im)), "" if mode == "RGB" else f"converted from mode {mode} to RGB"


def decode_base64(text: Any, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a base64 string (a `data:` URL prefix is allowed), or a ServeError."""
    if not isinstance(text, str) or not text.strip():
        raise ServeError("empty_input", "image_base64 is missing or empty")
    text = text.strip()
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    if len(text) > max_bytes * 4 // 3 + 4:
        raise ServeError("too_large", f"the image is over the limit of {max_bytes / 1e6:g} MB")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServeError("invalid_base64", "image_base64 is not valid base64") from None


def _png_base64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _segment_frame(served: Served, rgb: np.ndarray) -> np.ndarray:
    """The polyp mask (bool) of one RGB frame, at the frame's own size."""
    proba = runtime.probabilities(served.infer(runtime.model_input(rgb, served.card["input_size"])), "segmentation")
    return runtime.mask_at(proba[0], served.card["threshold"], rgb.shape)


def predict(served: Served, image: np.ndarray, with_overlay: bool = False) -> dict:
    """One frame through one model: class and probabilities, or polyp area and the mask at the frame's size."""
    card, (h, w) = served.card, image.shape[:2]
    out: dict[str, Any] = {"model": served.name, "task": card["task"], "width": w, "height": h}
    if card["task"] == "classification":
        proba = runtime.probabilities(served.infer(runtime.model_input(image, card["input_size"])), "classification")[0]
        out["class"] = card["classes"][int(proba.argmax())]
        out["probabilities"] = {c: float(p) for c, p in zip(card["classes"], proba)}
        return out
    mask = _segment_frame(served, image)
    out["polyp_area"] = float(mask.mean())
    out["mask_png_base64"] = _png_base64(mask.astype(np.uint8) * 255)
    if with_overlay:
        out["overlay_png_base64"] = _png_base64(runtime.overlay(image, mask, (255, 0, 255)))
    return out


def decode_and_predict(served: Served, data: bytes, max_pixels: int = MAX_PIXELS, with_overlay: bool = False) -> dict:
    """What /v1/predict does with an upload's bytes: decode (or a ServeError), predict, and note any conversion."""
    image, note = decode_image(data, max_pixels)
    return {**predict(served, image, with_overlay), "note": note}


def _draw_video(
    served: Served, source, target: Path, max_frames: int, job: dict | None = None
) -> tuple[list[float], float]:
    """Decode `source`'s first video stream, draw each frame's mask, encode H.264 to `target`; per-frame areas.

    `job["frames_done"]` counts the frames done so far: how a client watching the job learns how far it got.
    """
    import av

    from .progress import progress

    stream = source.streams.video[0]
    fps = float(stream.average_rate or 25)
    areas: list[float] = []
    with av.open(str(target), mode="w", format="mp4", options={"movflags": "+faststart"}) as sink:
        encoder = None
        for frame in progress(source.decode(stream), desc="video frames", total=stream.frames or None):
            if len(areas) >= max_frames:
                raise ServeError("too_large", f"the video has more than {max_frames} frames")
            rgb = frame.to_ndarray(format="rgb24")
            if encoder is None:
                encoder = sink.add_stream("libx264", rate=round(fps))
                h, w = rgb.shape[:2]
                encoder.width, encoder.height = w - w % 2, h - h % 2  # yuv420p needs even sides
                encoder.pix_fmt, encoder.options = "yuv420p", {"crf": "23", "preset": "veryfast"}
            mask = _segment_frame(served, rgb)
            areas.append(float(mask.mean()))
            drawn = np.ascontiguousarray(runtime.overlay(rgb, mask, (255, 0, 255))[: encoder.height, : encoder.width])
            sink.mux(encoder.encode(av.VideoFrame.from_ndarray(drawn, format="rgb24")))
            if job is not None:
                job["frames_done"] = len(areas)
        if encoder is None:
            raise ServeError("unsupported_video", "the video has no frames")
        sink.mux(encoder.encode(None))
    return areas, fps


def predict_video(
    served: Served,
    data: bytes,
    max_frames: int = MAX_VIDEO_FRAMES,
    max_seconds: float = MAX_VIDEO_SECONDS,
    job: dict | None = None,
) -> tuple[bytes, dict]:
    """A video's frames through a segmenter, the mask drawn onto each; returns H.264 MP4 bytes and per-frame areas.

    Decoded with PyAV (FFmpeg) from memory. H.264 in yuv420p with the index at
    the front ("faststart", which rewrites the file: it is written in a
    private temporary folder, removed on return) is what browsers play.
    `job`, when given, is kept up to date while the frames go through:
    `frames_total` (from the container, None where it does not say) and `frames_done`.
    """
    import av

    if served.card["task"] != "segmentation":
        raise ServeError("invalid_request", f"{served.name} is a classifier: a video needs a segmentation model")
    if not data:
        raise ServeError("empty_input", "the upload is empty (0 bytes)")
    try:
        source = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise ServeError("unsupported_video", f"not a video FFmpeg can read ({exc})") from None
    with source, tempfile.TemporaryDirectory(prefix="course-video-") as tmp:
        containers = set(source.format.name.split(","))
        if not containers & VIDEO_CONTAINERS:
            raise ServeError(
                "unsupported_video", f"a {source.format.long_name} file is not a video (mp4, mov, avi, webm)"
            )
        if not source.streams.video:
            raise ServeError("unsupported_video", "the file has no video stream")
        stream = source.streams.video[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        if seconds > max_seconds or (stream.frames or 0) > max_frames:
            raise ServeError(
                "too_large",
                f"the video is {seconds:.1f} s / {stream.frames} frames; the limits are {max_seconds:g} s and "
                f"{max_frames} frames",
            )
        target = Path(tmp) / "out.mp4"
        if job is not None:
            job.update(frames_total=stream.frames or None, frames_done=0)
        try:
            areas, fps = _draw_video(served, source, target, max_frames, job)
        except (av.error.FFmpegError, ValueError) as exc:
            raise ServeError("unsupported_video", f"the video could not be decoded ({exc})") from None
        mp4 = target.read_bytes()
    return mp4, {"model": served.name, "frames": len(areas), "fps": fps, "polyp_areas": areas}


def load_test(call, clients: int, seconds: float) -> dict:
    """Run `call(state)` (True on success) in `clients` threads for `seconds`: requests/s, p50/p99 ms, errors.

    Each thread keeps its own `state` dict (e.g. an HTTP client with its
    keep-alive connection). The same harness times the model in process and
    over HTTP (benchmarks/serve_load.py, notebook 06).
    """
    return _summary(clients, *_load(call, clients, seconds))


def _load(call, clients: int, seconds: float) -> tuple[list[float], int, float]:
    """What `load_test` measures, raw: every call's latency (s), the failed calls, the wall time (s)."""
    import threading
    import time

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        mine, bad, state = [], 0, {}
        while time.perf_counter() < stop:
            start = time.perf_counter()
            ok = call(state)
            mine.append(time.perf_counter() - start)
            bad += not ok
        for resource in state.values():  # e.g. the thread's HTTP client
            getattr(resource, "close", lambda: None)()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0], time.perf_counter() - began


def _summary(clients: int, latencies: list[float], errors: int, wall: float) -> dict:
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests_per_s": len(ms) / wall,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "requests": len(ms),
        "errors": errors,
    }


def multipart(
    png: bytes, field: str = "file", name: str = "frame.png", boundary: str = "course-frame"
) -> tuple[bytes, str]:
    """A multipart/form-data body holding one file, and its content type: built once, sent many times."""
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + png + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def exchange(sock, request: bytes) -> tuple[int, bytes]:
    """Send one whole HTTP/1.1 request on a kept-alive socket; the response's status and body (Content-Length).

    The load generator's client: a raw socket and a request built once. On
    the same 2 CPUs as the server, http.client spent 0.14 ms of CPU per
    request parsing each response's headers (email.parser) against 0.04 ms
    here, in 4 threads that share one GIL: the measurement is of the server,
    as with a load generator such as wrk, not of a client library.
    """
    sock.sendall(request)
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        data += _received(sock)
    length = _CONTENT_LENGTH.search(data, 0, end + 2)
    if not data.startswith(b"HTTP/1.") or length is None:
        raise ConnectionError(f"not an HTTP response with a Content-Length: {data[:80]!r}")
    size = end + 4 + int(length.group(1))
    while len(data) < size:
        data += _received(sock)
    return int(data[9:12]), data[end + 4 : size]


def _received(sock) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("the server closed the connection")
    return chunk


def http_vs_in_process(
    url: str, served: Served, png: bytes, clients: list[int], seconds: float, rounds: int = 1
) -> pd.DataFrame:
    """The same frame through the same model, called in process and over HTTP, at each client count.

    In process, a call is what the endpoint does (decode, resize, infer, mask
    PNG); over HTTP it adds the request, the multipart parsing and the JSON.
    The HTTP clients are lean on purpose (`exchange`: one kept-alive socket
    per thread and a request encoded once): they share the CPUs with the
    server, and the measurement is of the server, not of a client library.
    Every response is checked: status 200 and JSON with the prediction.
    With `rounds` > 1 the two modes take turns, `seconds / rounds` at a time,
    so that a slow spell of a shared machine falls on both alike.
    """
    import socket
    from urllib.parse import urlsplit

    host, port = urlsplit(url).hostname, urlsplit(url).port
    body, content_type = multipart(png)
    request = (
        f"POST /v1/predict?model={served.name} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    def in_process(_state: dict) -> bool:
        return "task" in decode_and_predict(served, png)

    def over_http(state: dict) -> bool:
        if "client" not in state:  # one connection per thread, kept alive
            state["client"] = socket.create_connection((host, port), timeout=60)
            state["client"].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            status, answer = exchange(state["client"], request)
        except OSError:  # a broken connection counts as an error; the next call opens a new one
            state.pop("client").close()
            return False
        try:
            return status == 200 and "task" in json.loads(answer)
        except ValueError:  # a 200 whose body is no JSON is an error too
            return False

    in_process({}), over_http({})  # warm-up: first inference, first connection
    runs: dict[tuple[str, int], tuple[list[float], int, float]] = {}
    for n in clients:
        for _ in range(rounds):
            for mode, call in (("in process", in_process), ("HTTP", over_http)):
                latencies, errors, wall = _load(call, n, seconds / rounds)
                before = runs.get((mode, n), ([], 0, 0.0))
                runs[mode, n] = (before[0] + latencies, before[1] + errors, before[2] + wall)
    table = pd.DataFrame([{"mode": mode, **_summary(n, *run)} for (mode, n), run in runs.items()])
    table["HTTP / in process"] = table["requests_per_s"] / table.groupby("clients")["requests_per_s"].transform("first")
    return table


def load_line(load: pd.DataFrame) -> str:
    """`http_vs_in_process`'s table in one sentence: HTTP / in process at every client count (not only the best)
    and whether the target (`THROUGHPUT_TARGET`) is met, for a summary that a reader may take as the verdict."""
    http = load[load["mode"] == "HTTP"].set_index("clients")
    text = "HTTP / in-process throughput " + ", ".join(
        f"{r['HTTP / in process']:.2f}x at {n} client{'s' * (n > 1)} ({r['requests_per_s']:.0f} requests/s)"
        for n, r in http.iterrows()
    )
    if (met := target_met(load)) is not None:
        clients, target = THROUGHPUT_TARGET
        text += (
            f"; the target, at least {target:.2f} at {clients} clients with no errors, is {'met' if met else 'NOT met'}"
        )
    return text


def target_met(load: pd.DataFrame) -> bool | None:
    """Whether `http_vs_in_process`'s table meets `THROUGHPUT_TARGET` with no errors; None when it did not measure
    the target's client count. The notebook's summary and `benchmarks/serve_load.py` judge by this one rule."""
    clients, target = THROUGHPUT_TARGET
    http = load[(load["mode"] == "HTTP") & (load["clients"] == clients)]
    if http.empty:
        return None
    return bool(http["HTTP / in process"].iloc[0] >= target and not load["errors"].any())


@contextmanager
def background(xmls: list[Path], threads: int | None = None, timeout: float = 60.0, workers: int | None = None):
    """Start `python -m helpers serve` as a separate process on a free local port; yield (url, process); stop it.

    The notebook and the benchmark talk to a real server this way, as any
    client would; the server is always stopped, even when the caller fails.
    `workers` defaults to the server's own default (`auto_workers`); it is
    ready when every worker process has answered /health.
    """
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "helpers", "serve", "--port", str(port)]
    command += [a for xml in xmls for a in ("--model", str(xml))] + (["--threads", str(threads)] if threads else [])
    expected = workers or auto_workers()
    command += ["--workers", str(expected)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    answered: set[int] = set()  # the worker processes that have answered (each new connection may reach another)
    try:
        deadline = time.monotonic() + timeout
        while len(answered) < expected:
            if process.poll() is not None:
                raise RuntimeError(f"the server stopped (exit {process.returncode}): {process.stderr.read()[-500:]}")
            try:
                answered.add(httpx.get(url + "/health", timeout=1).json()["pid"])
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(answered)} of {expected} server processes answered /health in {timeout:g} s")
            time.sleep(0.02 if answered else 0.1)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


WORKER_CONFIG = "COURSE_SERVE_WORKER"  # how `serve --workers N` tells each worker process what to serve


def worker_app() -> FastAPI:
    """The app of one worker process of `python -m helpers serve --workers N` (uvicorn starts each by this name).

    Each worker compiles its own copy of every model; the video jobs' folder
    is the one the parent process made, so that any worker can report any job.
    """
    config = json.loads(os.environ[WORKER_CONFIG])
    models = load_models([Path(m) for m in config["models"]], config["threads"])
    return create_app(models, jobs_dir=Path(config["jobs"]))


def run(xmls: list[Path], host: str, port: int, threads: int | None = None, workers: int = 1) -> None:
    """Serve until interrupted: one process with the app, or `workers` processes sharing the port.

    With several workers each gets `threads` inference threads (default: its
    share of the CPUs, so that the workers do not fight over them).
    """
    import uvicorn

    # warnings and errors only, and no access log: at log level "warning" uvicorn would still work out the client
    # address and the quoted path of every request for an access-log line that it then drops
    quiet = {"log_level": "warning", "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(load_models(xmls, threads)), host=host, port=port, **quiet)
        return
    check_models(xmls)  # a bad model is refused here (ValueError), before any worker starts
    with tempfile.TemporaryDirectory(prefix="course-serve-jobs-") as jobs:
        share = threads or max(1, cpus() // workers)
        os.environ[WORKER_CONFIG] = json.dumps({"models": [str(x) for x in xmls], "threads": share, "jobs": jobs})
        uvicorn.run("helpers.serve:worker_app", factory=True, workers=workers, host=host, port=port, **quiet)


def bad_requests(png: bytes) -> dict[str, tuple[str, dict]]:
    """One request per kind of bad input, named by the error code it must get: (endpoint, httpx keyword arguments)."""
    image = "/v1/predict"
    return {
        "empty_input": (image, {"files": {"file": ("empty.png", b"")}}),
        "invalid_base64": (image, {"json": {"image_base64": "this is not base64!"}}),
        "not_an_image": (image, {"json": {"image_base64": base64.b64encode(b"plain text, not an image").decode()}}),
        "corrupt_image": (image, {"files": {"file": ("truncated.png", png[: len(png) // 2])}}),
        "too_large": (image, {"files": {"file": ("huge.bin", b"\0" * (MAX_BYTES + 1))}}),
        "unknown_model": (image, {"files": {"file": ("frame.png", png)}, "data": {"model": "no-such-model"}}),
        "unsupported_media_type": (image, {"content": b"hello", "headers": {"content-type": "text/plain"}}),
        "unsupported_video": ("/v1/predict-video", {"files": {"file": ("clip.mp4", b"not a video at all" * 20)}}),
    }


def send_bad_requests(url: str, png: bytes) -> pd.DataFrame:
    """Send every request of `bad_requests` to a running server; what came back (status, code, message) per input."""
    import httpx

    rows = []
    for code, (endpoint, request) in bad_requests(png).items():
        r = httpx.post(url + endpoint, timeout=60, **request)
        error = r.json().get("error", {})
        rows.append(
            {
                "bad input": code,
                "endpoint": endpoint,
                "status": r.status_code,
                "code": error.get("code"),
                "message": str(error.get("message"))[:90],
            }
        )
    return pd.DataFrame(rows)


def query_flag(request: Request, name: str) -> bool:
    """A true/false query parameter (false when absent), or `invalid_request`."""
    value = request.query_params.get(name, "false").lower()
    if value not in FLAGS:
        raise ServeError("invalid_request", f"?{name}= takes true or false, not {value[:20]!r}")
    return FLAGS[value]


async def read_body(request: Request, limit: int, slack: int = 65_536) -> bytes:
    """The whole request body, refused with `too_large` as soon as it passes `limit` (+ `slack` for the form's own
    bytes), chunked uploads too."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + slack:
            raise ServeError("too_large", f"the upload is over the limit of {limit / 1e6:g} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(body: bytes, content_type: str) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name (the first of each name wins).

    python-multipart's parser over the body already in memory: Starlette's
    streaming form parser spools each file through a temporary file and cost
    the event loop a third of its time per image request (measured with
    cProfile); this is about 15 µs for a frame.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise ServeError("invalid_request", "multipart/form-data without a boundary")
    fields: dict[str, bytes] = {}
    part: dict[str, Any] = {}

    def header_end() -> None:
        part["headers"][part["field"].lower()] = part["value"]
        part["field"] = part["value"] = b""

    def part_end() -> None:
        name = parse_options_header(part.pop("headers").get(b"content-disposition", b""))[1].get(b"name", b"")
        fields.setdefault(name.decode("utf-8", "replace"), b"".join(part["data"]))

    callbacks = {
        "on_part_begin": lambda: part.update(headers={}, field=b"", value=b"", data=[]),
        "on_header_field": lambda b, start, end: part.update(field=part["field"] + b[start:end]),
        "on_header_value": lambda b, start, end: part.update(value=part["value"] + b[start:end]),
        "on_header_end": header_end,
        "on_part_data": lambda b, start, end: part["data"].append(b[start:end]),
        "on_part_end": part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise ServeError("invalid_request", f"malformed multipart/form-data ({exc})") from None
    if "headers" in part:  # a part began and never ended: the parser does not say so itself
        raise ServeError("invalid_request", "the multipart/form-data body ends inside a part (a truncated upload?)")
    return fields


async def read_upload(request: Request, limit: int) -> tuple[bytes, str | None]:
    """The multipart field `file` (at most `limit` bytes, else `too_large`) and the optional field `model`."""
    fields = parse_multipart(await read_body(request, limit), request.headers.get("content-type", ""))
    data = fields.get("file")
    if data is None:
        raise ServeError("empty_input", "no file in the multipart field 'file'")
    if len(data) > limit:
        raise ServeError("too_large", f"the upload is over the limit of {limit / 1e6:g} MB")
    model = fields.get("model", b"").decode("utf-8", "replace")
    return data, model or None


class ServiceApp(FastAPI):
    """FastAPI, with the image endpoint called straight from the server rather than through FastAPI's stack.

    Every request normally passes FastAPI's middleware (server errors,
    exception handlers, body limit, telemetry, exit stack) and its router
    before it reaches the endpoint. `predict_image` needs none of them: it
    reads the request itself and raises only ServeError. On 2 busy CPUs that
    stack cost the server 0.1-0.4 ms of its 4.5-4.9 ms of CPU per image
    request (three side-by-side runs; README "Serving"), so the requests named in
    `direct` (method, path) go to their endpoint at once; an exception they
    raise is answered by the app's own exception handlers, as any other
    request's. Everything else, and the OpenAPI page, is FastAPI's as usual.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.direct: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope, receive, send) -> None:
        endpoint = self.direct.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if endpoint is None:
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = next(self.exception_handlers[t] for t in type(exc).__mro__ if t in self.exception_handlers)
            response = await handler(request, exc)
        await response(scope, receive, send)


def create_app(
    models: dict[str, Served], max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS, jobs_dir: Path | None = None
) -> ServiceApp:
    """The FastAPI app: the API under /v1, /health, OpenAPI at /docs and the upload page at /.

    `jobs_dir` is where video jobs' progress is kept, shared by the worker
    processes of one server; without it the app keeps its own temporary folder.
    """
    # Image requests decode and predict on a pool twice the size of the infer-request pools: enough threads to
    # decode while others infer, few enough that they do not queue for the GIL against the event loop (measured
    # with benchmarks/serve_load.py: at 16 clients 640 against 515 requests/s with Starlette's 40 threads).
    executor = ThreadPoolExecutor(
        max(2, 2 * sum(m.pool.maxsize for m in models.values())), thread_name_prefix="predict"
    )

    own_jobs = tempfile.TemporaryDirectory(prefix="course-serve-jobs-") if jobs_dir is None else None
    jobs = Jobs(Path(own_jobs.name) if own_jobs else jobs_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)
        if own_jobs is not None:
            own_jobs.cleanup()

    app = ServiceApp(
        title="Colonoscopy course model server",
        description="Notebook 06's OpenVINO models over HTTP. Every error is "
        '`{"error": {"code": ..., "message": ...}}`; the codes: '
        + ", ".join(f"`{c}` ({s})" for c, s in ERRORS.items()),
        lifespan=lifespan,
    )

    def error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=ERRORS[code])

    @app.exception_handler(ServeError)
    async def _refused(_: Request, exc: ServeError):
        return error(exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        return error("invalid_request", str(exc.errors())[:500])

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException):
        if exc.status_code == 404:
            return error("not_found", "no such endpoint (see /docs)")
        return JSONResponse({"error": {"code": "http_error", "message": str(exc.detail)}}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception):
        return error("internal_error", f"{type(exc).__name__}: the server could not handle this request")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "models": list(models), "pid": os.getpid()}

    @app.get("/v1/models")
    def list_models() -> dict:
        return {"models": [m.describe() for m in models.values()]}

    def pick(name: Any) -> Served:
        if name in (None, ""):
            return next(iter(models.values()))
        if name not in models:
            raise ServeError("unknown_model", f"no model named {str(name)[:100]!r}; served: {', '.join(models)}")
        return models[name]

    @app.post(
        "/v1/predict",
        response_class=JSONResponse,
        openapi_extra={
            "requestBody": {
                "content": {
                    "multipart/form-data": {"schema": UPLOAD_SCHEMA},
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"image_base64": {"type": "string"}, "model": {"type": "string"}},
                            "required": ["image_base64"],
                        }
                    },
                },
                "required": True,
            },
            "parameters": QUERY_PARAMETERS,
        },
    )
    async def predict_image(request: Request) -> JSONResponse:
        """One image (multipart field `file`, or JSON `image_base64`); `?overlay=true` adds the overlay PNG. The model
        is named by the form or JSON field `model`, or `?model=`; the first served model otherwise."""
        # the query is read here rather than declared as typed parameters: FastAPI's dependency solving cost the
        # event loop a sixth of its time per request (the OpenAPI page still lists them, QUERY_PARAMETERS)
        overlay, model = query_flag(request, "overlay"), request.query_params.get("model")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if int(request.headers.get("content-length") or 0) > max_bytes * 4 // 3 + 4096:
            raise ServeError("too_large", f"the request is over the limit of {max_bytes / 1e6:g} MB")
        if kind == "multipart/form-data":
            data, name = await read_upload(request, max_bytes)
            name = name or model
        elif kind == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ServeError("invalid_request", "the body is not valid JSON") from None
            if not isinstance(body, dict):
                raise ServeError("invalid_request", 'the JSON body must be an object {"image_base64": ...}')
            data, name = decode_base64(body.get("image_base64"), max_bytes), body.get("model") or model
        elif not kind:
            raise ServeError("empty_input", "no body: send a multipart field 'file' or JSON with image_base64")
        else:
            raise ServeError("unsupported_media_type", f"{kind[:80]}: send multipart/form-data or application/json")
        if len(data) > max_bytes:
            raise ServeError("too_large", f"the image is over the limit of {max_bytes / 1e6:g} MB")
        served = pick(name)

        # decoding runs on the pool (on the event loop it would serialise every client's decode), and so does
        # encoding the JSON: the event loop only moves bytes
        def respond() -> JSONResponse:
            return JSONResponse(decode_and_predict(served, data, max_pixels, overlay))

        return await asyncio.get_running_loop().run_in_executor(executor, respond)

    app.direct["POST", "/v1/predict"] = predict_image  # the hot path skips FastAPI's stack (ServiceApp)

    @app.post(
        "/v1/predict-video",
        response_class=Response,
        responses={200: {"content": {"video/mp4": {}}, "description": "the video with the mask drawn on every frame"}},
        openapi_extra={
            "requestBody": {
                "content": {"multipart/form-data": {"schema": UPLOAD_SCHEMA}},
                "required": True,
            }
        },
    )
    async def predict_video_upload(request: Request, response: str = "video", progress_id: str | None = None):
        """A video (mp4/avi/mov) in the multipart field `file`: back as H.264 MP4 with the mask on every frame
        (`?response=json`: JSON with the per-frame polyp areas and the MP4 as base64). With `?progress_id=ID`
        (letters, digits, - and _), `GET /v1/progress/ID` tells how many frames are done while it works."""
        if progress_id is not None and not PROGRESS_ID.fullmatch(progress_id):
            raise ServeError("invalid_request", "progress_id: 1 to 64 letters, digits, '-' or '_'")
        if int(request.headers.get("content-length") or 0) > MAX_VIDEO_BYTES + 4096:
            raise ServeError("too_large", f"the request is over the limit of {MAX_VIDEO_BYTES / 1e6:g} MB")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
            raise ServeError("unsupported_media_type", "send the video as multipart/form-data, field 'file'")
        job = jobs.start(progress_id) if progress_id is not None else {}
        try:
            data, name = await read_upload(request, MAX_VIDEO_BYTES)
            name = name or next((n for n, m in models.items() if m.card["task"] == "segmentation"), None)
            if name is None:
                raise ServeError("unknown_model", "no segmentation model is served: a video needs one")
            job["state"] = "working"
            mp4, info = await run_in_threadpool(predict_video, pick(name), data, job=job)
            job["state"] = "done"
        except ServeError as exc:
            job.update(state="refused", error=exc.code)
            raise
        except Exception:
            job["state"] = "failed"
            raise
        if response == "json":
            return JSONResponse({**info, "video_mp4_base64": base64.b64encode(mp4).decode("ascii")})
        headers = {"X-Frames": str(info["frames"]), "X-Polyp-Area-Mean": f"{np.mean(info['polyp_areas']):.4f}"}
        return Response(mp4, media_type="video/mp4", headers=headers)

    @app.get("/v1/progress/{progress_id}")
    def video_progress(progress_id: str) -> dict:
        """How far the video sent with `?progress_id=` has got: state, frames done, frames in all (if known)."""
        job = jobs.get(progress_id)
        if job is None:
            raise ServeError("not_found", f"no video job {progress_id[:64]!r} (send one with ?progress_id=)")
        return job

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE

    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Polyp model server</title>
<style>body{font-family:sans-serif;margin:2em;max-width:60em} figure{display:inline-block;margin:0 1em 0 0}
img{max-width:26em;border:1px solid #ccc} #error{color:#b00}</style></head>
<body><h1>Polyp model server</h1>
<p>Upload a colonoscopy frame: the served model's answer appears beside it. API: <a href="/docs">/docs</a>.</p>
<p><label>Image: <input type="file" id="image-input" accept="image/*"></label>
<label>Video: <input type="file" id="video-input" accept="video/*,.mp4,.avi,.mov"></label></p>
<p id="status"></p><progress id="video-progress" hidden></progress><p id="error"></p>
<figure><img id="original" alt=""><figcaption>original</figcaption></figure>
<figure><img id="overlay" alt=""><figcaption id="result">prediction</figcaption></figure>
<figure><video id="video-result" controls muted></video><figcaption id="video-caption">video</figcaption></figure>
<script>
document.getElementById("image-input").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const status = document.getElementById("status"), error = document.getElementById("error");
  status.textContent = "predicting…"; error.textContent = "";
  document.getElementById("original").src = URL.createObjectURL(file);
  const body = new FormData();
  body.append("file", file);
  const response = await fetch("/v1/predict?overlay=true", {method: "POST", body});
  const json = await response.json();
  status.textContent = "";
  if (!response.ok) { error.textContent = json.error.code + ": " + json.error.message; return; }
  const overlay = document.getElementById("overlay"), result = document.getElementById("result");
  if (json.task === "segmentation") {
    overlay.src = "data:image/png;base64," + json.overlay_png_base64;
    result.textContent = "polyp area: " + (100 * json.polyp_area).toFixed(1) + "% of the frame";
  } else {
    overlay.src = URL.createObjectURL(file);
    result.textContent = json.class + " (" + (100 * json.probabilities[json.class]).toFixed(1) + "%)";
  }
});
document.getElementById("video-input").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  const status = document.getElementById("status"), error = document.getElementById("error");
  status.textContent = "uploading the video…";
  error.textContent = "";
  const body = new FormData();
  body.append("file", file);
  const id = Date.now().toString(36) + Math.random().toString(36).slice(2, 10);
  const bar = document.getElementById("video-progress");
  const poll = setInterval(async () => {  // every frame is one inference: say how far it got
    const r = await fetch("/v1/progress/" + id);
    if (!r.ok) return;
    const job = await r.json();
    if (job.state !== "working") return;
    bar.hidden = false; bar.value = job.frames_done; bar.max = job.frames_total || job.frames_done + 1;
    status.textContent = "processing frame " + job.frames_done + (job.frames_total ? " of " + job.frames_total : "")
      + " (every frame is one inference: a few to a few dozen frames per second on a laptop CPU)";
  }, 500);
  const response = await fetch("/v1/predict-video?progress_id=" + id, {method: "POST", body});
  clearInterval(poll);
  bar.hidden = true;
  status.textContent = "";
  if (!response.ok) {
    const json = await response.json();
    error.textContent = json.error.code + ": " + json.error.message;
    return;
  }
  const video = document.getElementById("video-result");
  video.src = URL.createObjectURL(await response.blob());
  document.getElementById("video-caption").textContent = response.headers.get("X-Frames") + " frames, mean polyp area "
    + (100 * parseFloat(response.headers.get("X-Polyp-Area-Mean"))).toFixed(1) + "%";
});
</script></body></html>
"""
