"""The model server: every endpoint, every error code, the image conversions, and shared models under
concurrent requests (FastAPI's test client; no socket is opened)."""

import base64
import io
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from test_deploy import SIZE, TinyClassifier, TinySegmenter, _frames

from helpers import deploy, serve
from helpers.__main__ import main


@pytest.fixture(scope="module")
def irs(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ir")
    made = {}
    for name, model, task, classes in (
        ("classifier", TinyClassifier(), "classification", ["normal", "polyp", "dyed"]),
        ("segmenter", TinySegmenter(), "segmentation", ["background", "polyp"]),
    ):
        card = deploy.card(task, classes, SIZE, "tiny", "test")
        made[name] = deploy.export(model.eval(), card, out, name, calibration=_frames(4), precisions=("FP32",))["FP32"]
    return made


@pytest.fixture(scope="module")
def client(irs):
    models = serve.load_models([irs["segmenter"], irs["classifier"]], threads=1)
    return TestClient(serve.create_app(models, max_bytes=200_000, max_pixels=1_000_000))


def _png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")  # the array's shape and dtype choose the mode
    return buf.getvalue()


def _error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]["message"]


FRAME = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)


def test_health_models_and_the_page(client, irs):
    health = client.get("/health").json()
    assert health == {"status": "ok", "models": ["segmenter_fp32", "classifier_fp32"], "pid": os.getpid()}
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert models["classifier_fp32"]["task"] == "classification" and models["classifier_fp32"]["classes"][0] == "normal"
    assert models["segmenter_fp32"]["input_size"] == SIZE and models["segmenter_fp32"]["precision"] == "FP32"
    page = client.get("/")
    assert page.status_code == 200 and 'id="overlay"' in page.text and "/v1/predict" in page.text
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_segmentation_by_multipart_returns_the_mask_at_the_frames_own_size(client):
    r = client.post("/v1/predict?overlay=true", files={"file": ("a.png", _png(FRAME), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png_base64"]))))
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png_base64"])))
    assert mask.shape == (40, 50) and set(np.unique(mask)) <= {0, 255}
    assert overlay.size == (50, 40) and body["polyp_area"] == pytest.approx((mask > 0).mean())
    assert body["model"] == "segmenter_fp32" and body["note"] == ""
    assert "overlay_png_base64" not in client.post("/v1/predict", files={"file": ("a.png", _png(FRAME))}).json()


def test_classification_by_base64_json_names_its_model(client):
    payload = {
        "image_base64": "data:image/png;base64," + base64.b64encode(_png(FRAME)).decode(),
        "model": "classifier_fp32",
    }
    body = client.post("/v1/predict", json=payload).json()
    assert body["class"] in ("normal", "polyp", "dyed") and sum(body["probabilities"].values()) == pytest.approx(1.0)
    assert body["probabilities"][body["class"]] == max(body["probabilities"].values())


@pytest.mark.parametrize(
    "array",
    [
        np.full((30, 30), 90, np.uint8),  # grey
        np.full((30, 30), 40_000, np.uint16),  # 16-bit grey
        np.dstack([FRAME[:30, :30], np.full((30, 30), 128, np.uint8)]),  # alpha
    ],
)
def test_grey_16_bit_and_alpha_uploads_are_converted_and_say_so(client, array):
    body = client.post("/v1/predict", files={"file": ("x.png", _png(array))}).json()
    assert body["note"].startswith("converted from mode") and body["width"] == 30


def test_cmyk_jpeg_is_converted(client):
    buf = io.BytesIO()
    Image.fromarray(FRAME).convert("CMYK").save(buf, format="JPEG")
    assert client.post("/v1/predict", files={"file": ("c.jpg", buf.getvalue())}).json()["note"] == (
        "converted from mode CMYK to RGB"
    )


def test_every_error_code_and_the_server_keeps_serving(client):
    png = _png(FRAME)
    _error(client.post("/v1/predict", files={"file": ("e.png", b"")}), 400, "empty_input")
    _error(client.post("/v1/predict", json={"image_base64": ""}), 400, "empty_input")
    _error(client.post("/v1/predict"), 400, "empty_input")
    _error(client.post("/v1/predict", json={"image_base64": "not base64!!"}), 400, "invalid_base64")
    text = base64.b64encode(b"hello, not an image").decode()
    _error(client.post("/v1/predict", json={"image_base64": text}), 415, "not_an_image")
    _error(client.post("/v1/predict", files={"file": ("t.png", png[: len(png) // 2])}), 422, "corrupt_image")
    _error(client.post("/v1/predict", files={"file": ("big.bin", b"\0" * 300_000)}), 413, "too_large")
    huge = _png(np.zeros((1200, 1000, 3), np.uint8))  # 1.2 MP: over this server's 1 MP, small as a PNG
    assert "MP" in _error(client.post("/v1/predict", files={"file": ("h.png", huge)}), 413, "too_large")
    _error(client.post("/v1/predict", files={"file": ("a.png", png)}, data={"model": "nope"}), 404, "unknown_model")
    _error(
        client.post("/v1/predict", content=b"abc", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    _error(
        client.post("/v1/predict", content=b"{oops", headers={"content-type": "application/json"}),
        400,
        "invalid_request",
    )
    _error(client.post("/v1/predict", json=["a list"]), 400, "invalid_request")
    _error(client.get("/v2/nothing"), 404, "not_found")
    assert client.post("/v1/predict", files={"file": ("a.png", png)}).status_code == 200  # still serving


def test_concurrent_requests_share_one_model_and_agree(client):
    png = _png(FRAME)

    def call(_):
        return client.post("/v1/predict", files={"file": ("a.png", png)}).json()["mask_png_base64"]

    with ThreadPoolExecutor(8) as pool:
        masks = list(pool.map(call, range(24)))
    assert len(set(masks)) == 1  # every request got the same answer from the shared compiled model


def test_unservable_models_are_refused_with_exit_2(tmp_path, irs, capsys):
    with pytest.raises(ValueError, match="expected an OpenVINO IR"):
        serve.load_models([tmp_path / "missing.xml"])
    with pytest.raises(ValueError, match="two models named"):
        serve.load_models([irs["segmenter"], irs["segmenter"]])
    assert main(["serve", "--model", str(tmp_path / "missing.xml")]) == 2
    assert "expected an OpenVINO IR" in capsys.readouterr().err


def _video(fmt="mp4", codec="libx264", frames=6, size=(48, 32)):
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as sink:
        stream = sink.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), 40 * i % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                sink.mux(packet)
        for packet in stream.encode(None):
            sink.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize("fmt, codec, name", [("mp4", "libx264", "clip.mp4"), ("avi", "mpeg4", "clip.avi")])
def test_video_comes_back_as_h264_mp4_with_every_frame(client, fmt, codec, name):
    import av

    r = client.post("/v1/predict-video", files={"file": (name, _video(fmt, codec), "video/mp4")})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "video/mp4" and r.headers["x-frames"] == "6"
    with av.open(io.BytesIO(r.content)) as back:
        stream = back.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in back.decode(stream)) == 6
    body = client.post("/v1/predict-video?response=json", files={"file": (name, _video(fmt, codec))}).json()
    assert body["frames"] == 6 and len(body["polyp_areas"]) == 6 and all(0 <= a <= 1 for a in body["polyp_areas"])
    assert base64.b64decode(body["video_mp4_base64"])[4:8] == b"ftyp"  # an MP4 file


def test_video_errors(client, irs):
    _error(client.post("/v1/predict-video", files={"file": ("v.mp4", b"")}), 400, "empty_input")
    _error(client.post("/v1/predict-video", files={"file": ("v.mp4", b"no video here" * 50)}), 415, "unsupported_video")
    _error(client.post("/v1/predict-video", files={"file": ("a.png", _png(FRAME))}), 415, "unsupported_video")
    _error(client.post("/v1/predict-video", json={"video": "x"}), 415, "unsupported_media_type")
    request = {"files": {"file": ("v.mp4", _video())}, "data": {"model": "classifier_fp32"}}
    _error(client.post("/v1/predict-video", **request), 400, "invalid_request")
    segmenter = serve.load_models([irs["segmenter"]], threads=1)["segmenter_fp32"]
    with pytest.raises(serve.ServeError) as refused:
        serve.predict_video(segmenter, _video(frames=5), max_frames=3)
    assert refused.value.code == "too_large" and refused.value.status == 413
    assert client.post("/v1/predict-video", files={"file": ("v.mp4", _video())}).status_code == 200  # still serving


def test_a_video_job_can_be_followed_frame_by_frame(client, irs):
    video = {"file": ("v.mp4", _video())}
    assert client.post("/v1/predict-video?progress_id=clip-1", files=video).status_code == 200
    done = client.get("/v1/progress/clip-1").json()
    assert done == {"progress_id": "clip-1", "state": "done", "frames_done": 6, "frames_total": 6}
    _error(client.get("/v1/progress/never-sent"), 404, "not_found")
    _error(client.post("/v1/predict-video?progress_id=../etc", files=video), 400, "invalid_request")  # a key only
    _error(
        client.post("/v1/predict-video?progress_id=b1", files={"file": ("v.mp4", b"x" * 500)}), 415, "unsupported_video"
    )
    assert client.get("/v1/progress/b1").json()["error"] == "unsupported_video"

    class Watched(dict):  # what a client polling /v1/progress sees, frame after frame
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            if key == "frames_done":
                seen.append(value)

    seen: list[int] = []
    segmenter = serve.load_models([irs["segmenter"]], threads=1)["segmenter_fp32"]
    serve.predict_video(segmenter, _video(frames=5), job=Watched())
    assert seen == [1, 2, 3, 4, 5]


def test_the_bad_request_catalogue_gets_each_its_code(client):
    """The catalogue notebook 06 shows: each request gets the code it is named by (and the documented status)."""
    for code, (endpoint, kwargs) in serve.bad_requests(_png(FRAME)).items():
        if code == "too_large":
            continue  # this client's limit is smaller than the default one the catalogue is sized for
        _error(client.post(endpoint, **kwargs), serve.ERRORS[code], code)


def test_background_server_answers_and_stops(irs):
    import httpx

    with serve.background([irs["segmenter"]], threads=1, workers=1) as (url, process):
        assert httpx.get(url + "/health").json()["models"] == ["segmenter_fp32"]
        refused = serve.send_bad_requests(url, _png(FRAME))  # the real default limits, over a real socket
        assert list(refused["code"]) == list(refused["bad input"])
        assert list(refused["status"]) == [serve.ERRORS[c] for c in refused["code"]]
    assert process.poll() is not None  # stopped on leaving the block


def test_worker_processes_share_the_port_and_the_video_jobs(irs):
    """`--workers 2`: both processes answer, a video job drawn by one is reported the same by either, and
    stopping the server stops every worker."""
    import httpx
    import psutil

    def folders() -> set:
        return set(Path(tempfile.gettempdir()).glob("course-serve-jobs-*"))

    before = folders()
    with serve.background([irs["segmenter"]], threads=1, workers=2) as (url, process):
        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(folders() - before) == 1  # the server's one folder of video jobs, for both workers
        pids = {httpx.get(url + "/health").json()["pid"] for _ in range(30)}
        assert len(pids) == 2 and process.pid not in pids
        sent = httpx.post(url + "/v1/predict-video?progress_id=w-1", files={"file": ("v.mp4", _video())}, timeout=60)
        assert sent.status_code == 200
        polled = [httpx.get(url + "/v1/progress/w-1") for _ in range(20)]  # new connections: either worker
        assert {r.json()["state"] for r in polled} == {"done"} and {r.json()["frames_done"] for r in polled} == {6}
        assert {r.status_code for r in (httpx.get(url + "/v1/progress/w-2") for _ in range(6))} == {404}
        assert httpx.post(url + "/v1/predict", files={"file": ("f.png", _png(FRAME))}).status_code == 200
    assert process.poll() is not None
    psutil.wait_procs(workers, timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert folders() == before  # removed with the server


def test_video_jobs_are_files_named_by_a_digest_and_the_newest_are_kept(tmp_path):
    jobs = serve.Jobs(tmp_path, kept=2)
    for n in range(3):
        jobs.start(f"clip-{n}")["frames_done"] = n + 1
        time.sleep(0.02)  # file times move in clock ticks (up to 10 ms): the next job is written later
    assert jobs.get("clip-0") is None  # the oldest went
    assert jobs.get("clip-2") == {"progress_id": "clip-2", "state": "uploading", "frames_done": 3, "frames_total": None}
    assert sorted(len(p.stem) for p in tmp_path.iterdir()) == [32, 32]  # hex digests: an id never becomes a path
    assert serve.Jobs(tmp_path).get("clip-1")["frames_done"] == 2  # another worker's view of the same folder


@pytest.mark.parametrize(("cpus", "workers"), [(1, 1), (2, 1), (4, 1), (8, 2), (16, 4)])
def test_auto_workers_is_one_per_four_cpus(monkeypatch, cpus, workers):
    monkeypatch.setattr(serve, "cpus", lambda: cpus)
    assert serve.auto_workers() == workers
    assert serve.worker_count("auto") == workers and serve.worker_count("3") == 3  # the command lines' --workers


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_worker_count_is_refused(irs, bad, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--model", str(irs["segmenter"]), "--workers", bad])
    assert refused.value.code == 2 and "a number of processes" in capsys.readouterr().err


FIRST_CALLS = """
import sys, threading
import numpy as np
from helpers import serve

served = next(iter(serve.load_models([sys.argv[1]]).values()))  # OpenVINO's default: more than one infer request
frame = np.zeros((served.card["input_size"],) * 2 + (3,), np.uint8)
sys.setswitchinterval(1e-6)  # threads busy with Python, as a server's event loop is, ask for the GIL all the time


def spin():
    while True:
        pass


for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
start = threading.Barrier(8)
calls = [threading.Thread(target=lambda: (start.wait(), served.infer(frame))) for _ in range(8)]
for t in calls:
    t.start()
for t in calls:
    t.join()
print("all answered", served.pool.maxsize, flush=True)
"""


def test_concurrent_first_requests_do_not_deadlock(irs):
    # Without the warm-up in load_models this hung in 12 of 13 fresh processes: OpenVINO's Python binding
    # initialises static data on its first call, and a thread waiting for that initialisation holds the GIL
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", FIRST_CALLS, str(irs["segmenter"])], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("eight concurrent first inferences on a freshly loaded model deadlocked")
    assert done.returncode == 0 and "all answered" in done.stdout, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 1  # the race needs two infer requests


def test_upload_parsing_query_flags_and_streamed_limits(client):
    png = _png(FRAME)
    body, content_type = serve.multipart(png)
    assert serve.parse_multipart(body, content_type) == {"file": png}
    for bad in (body[:-10], b"garbage"):  # truncated, or no form at all
        with pytest.raises(serve.ServeError, match="multipart") as refused:
            serve.parse_multipart(bad, content_type)
        assert refused.value.code == "invalid_request"
    with pytest.raises(serve.ServeError, match="boundary"):
        serve.parse_multipart(body, "multipart/form-data")
    r = client.post("/v1/predict?model=classifier_fp32", files={"file": ("a.png", png)})
    assert r.json()["task"] == "classification"  # the query names the model ...
    r = client.post(
        "/v1/predict?overlay=yes&model=classifier_fp32",
        files={"file": ("a.png", png)},
        data={"model": "segmenter_fp32"},
    )
    assert r.json()["task"] == "segmentation" and "overlay_png_base64" in r.json()  # ... and the form field wins
    assert "overlay_png_base64" not in client.post("/v1/predict?overlay=0", files={"file": ("a.png", png)}).json()
    assert "maybe" in _error(
        client.post("/v1/predict?overlay=maybe", files={"file": ("a.png", png)}), 400, "invalid_request"
    )
    headers = {"content-type": content_type}
    _error(client.post("/v1/predict", content=body[:-10], headers=headers), 400, "invalid_request")

    def streamed(size):  # no Content-Length: the server counts the bytes as they come
        yield from (b"\0" * 50_000 for _ in range(size // 50_000))

    message = _error(client.post("/v1/predict", content=streamed(400_000), headers=headers), 413, "too_large")
    assert "limit of 0.2 MB" in message  # the server's limit as configured, not that plus the form's slack
    assert client.post("/v1/predict", files={"file": ("a.png", png)}).status_code == 200  # still serving
    parameters = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["parameters"]
    assert {p["name"] for p in parameters} == {"overlay", "model"}


def test_the_server_runs_without_pytorch():
    """Serving and the predictor need OpenVINO, not the training framework: torch costs ~600 MB and 2 s per process."""
    import subprocess
    import sys

    code = "import sys, helpers.serve, helpers.eda; print([m for m in ('torch', 'timm', 'nncf') if m in sys.modules])"
    served = "import sys, helpers.serve; print([m for m in ('sklearn', 'matplotlib') if m in sys.modules])"
    assert (
        subprocess.run([sys.executable, "-c", served], capture_output=True, text=True, check=True).stdout.strip()
        == "[]"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


def test_a_fresh_servers_first_request_imports_nothing_heavy(irs):
    """The first image request (overlay included) once imported scikit-learn, matplotlib and seaborn: 1.0 s against
    0.04 s for the next ones, and a notebook's client timed out. They load with the server now, or not at all."""
    import ast
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; import numpy as np; from helpers import serve\n"
        f"served = serve.load_models([Path({str(irs['segmenter'])!r})], threads=1).popitem()[1]\n"
        "before = set(sys.modules)\n"
        f"png = {_png(np.full((40, 56, 3), 120, np.uint8))!r}\n"
        "answer = serve.decode_and_predict(served, png, with_overlay=True)\n"
        "assert 'overlay_png_base64' in answer\n"
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )  # Pillow's format plugins may still load on first use: milliseconds
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    heavy = {"sklearn", "matplotlib", "seaborn", "scipy", "pandas", "torch"}
    assert not heavy & set(ast.literal_eval(done.stdout.strip())), done.stdout


def test_load_line_gives_every_client_count_and_judges_the_target_at_its_own():
    """Notebook 06's summary once gave only the largest client count (its best ratio): now every count, and the
    verdict is read at the target's client count, with no errors."""
    import pandas as pd

    clients, target = serve.THROUGHPUT_TARGET
    rows = [(1, 300.0, 250.0), (clients, 900.0, 0.99 * target * 900), (16, 500.0, 450.0)]
    load = pd.DataFrame(
        [
            {"mode": m, "clients": n, "requests_per_s": r, "errors": 0}
            for n, a, b in rows
            for m, r in (("in process", a), ("HTTP", b))
        ]
    )
    load["HTTP / in process"] = load["requests_per_s"] / load.groupby("clients")["requests_per_s"].transform("first")
    line = serve.load_line(load)
    assert line.startswith("HTTP / in-process throughput 0.83x at 1 client (250 requests/s), ")
    assert f"0.79x at {clients} clients" in line and "0.90x at 16 clients" in line
    assert line.endswith(f"at least {target:.2f} at {clients} clients with no errors, is NOT met")
    load.loc[load["clients"] == clients, "requests_per_s"] *= [1.0, 1.02]
    load["HTTP / in process"] = load["requests_per_s"] / load.groupby("clients")["requests_per_s"].transform("first")
    assert serve.load_line(load).endswith("is met")
    load.loc[0, "errors"] = 1
    assert serve.load_line(load).endswith("is NOT met")
    assert "target" not in serve.load_line(load[load["clients"] != clients])
    assert serve.target_met(load[load["clients"] != clients]) is None  # the benchmark then says: not judged


def test_the_image_endpoint_skips_fastapis_stack_and_its_errors_still_get_their_codes(irs, monkeypatch):
    """ServiceApp sends POST /v1/predict straight to its endpoint: no middleware sees it, every other request goes
    through FastAPI as usual, and an error raised on the direct path is answered by the app's own handlers."""
    app = serve.create_app(serve.load_models([irs["segmenter"]], threads=1))
    seen = []

    @app.middleware("http")
    async def count(request, call_next):
        seen.append(request.url.path)
        return await call_next(request)

    client = TestClient(app, raise_server_exceptions=False)
    png = _png(FRAME)
    assert client.post("/v1/predict", files={"file": ("a.png", png)}).json()["task"] == "segmentation"
    _error(client.post("/v1/predict", files={"file": ("e.png", b"")}), 400, "empty_input")
    assert client.get("/health").status_code == 200
    assert seen == ["/health"]  # the two image requests never entered the middleware stack

    def crash(*_args, **_kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(serve, "decode_and_predict", crash)
    assert "RuntimeError" in _error(client.post("/v1/predict", files={"file": ("a.png", png)}), 500, "internal_error")
    monkeypatch.undo()
    assert client.post("/v1/predict", files={"file": ("a.png", png)}).status_code == 200  # still serving


def test_the_load_generators_client_reads_a_response_in_pieces_and_refuses_what_it_cannot_read():
    """`exchange`, the benchmark's lean HTTP client: status and body by Content-Length, however the bytes arrive;
    a response it cannot frame, or a closed connection, is an error (the load test counts it), never a hang."""
    import socket
    import threading

    def serve_once(peer, *pieces):
        def run():
            peer.recv(65536)
            for piece in pieces:
                peer.sendall(piece)
            peer.close()

        threading.Thread(target=run).start()

    body = b'{"task": "segmentation"}'
    ours, peer = socket.socketpair()
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    serve_once(peer, head[:20], head[20:] + body[:5], body[5:])
    assert serve.exchange(ours, b"POST / HTTP/1.1\r\n\r\n") == (200, body)
    ours.close()

    ours, peer = socket.socketpair()
    serve_once(peer, b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\n{}")
    assert serve.exchange(ours, b"x") == (413, b"{}")
    ours.close()

    for reply in (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-le"):
        ours, peer = socket.socketpair()
        serve_once(peer, reply)
        with pytest.raises(ConnectionError):
            serve.exchange(ours, b"x")
        ours.close()
