"""The upload page in a real browser: Debian's Chromium, driven by Playwright, against a real uvicorn server.

Playwright's own browser download cannot be reached here, so the test uses the
system Chromium (`apt-get install -y chromium`; `.ci/run` installs it) and
skips, saying so, where there is none.
"""

import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from PIL import Image
from test_serve import _video, irs  # noqa: F401  (irs is a fixture)

from helpers import serve

CHROMIUM = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = "no Chromium on this machine: apt-get install -y chromium (or set COURSE_CHROMIUM)"
if CHROMIUM is None and os.environ.get("COURSE_REQUIRE_BROWSER") == "1":  # CI (.ci/run) installs it: never skip there
    raise RuntimeError(MISSING)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=MISSING)


@pytest.fixture(scope="module")
def server(irs):  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = serve.create_app(serve.load_models([irs["segmenter"]], threads=1))
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_shows_the_overlay_and_plays_the_processed_video(server, tmp_path):
    from playwright.sync_api import sync_playwright

    image = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(image)
    video = tmp_path / "clip.mp4"
    video.write_bytes(_video(frames=10, size=(64, 48)))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        sent = []
        page.on("request", lambda request: sent.append(request.url))
        page.goto(server + "/")
        page.set_input_files("#image-input", str(image))
        page.wait_for_function("document.getElementById('overlay').src.startsWith('data:image/png')", timeout=30_000)
        page.wait_for_function("document.getElementById('overlay').complete", timeout=10_000)
        assert page.eval_on_selector("#overlay", "img => [img.naturalWidth, img.naturalHeight]") == [80, 60]
        assert "polyp area" in page.inner_text("#result")
        page.set_input_files("#video-input", str(video))
        page.wait_for_function("document.getElementById('video-result').src.startsWith('blob:')", timeout=60_000)
        # HAVE_CURRENT_DATA or better and no media error: Chromium decoded the H.264 it was sent
        page.wait_for_function("document.getElementById('video-result').readyState >= 2", timeout=30_000)
        state = page.eval_on_selector(
            "#video-result", "v => ({error: v.error && v.error.code, width: v.videoWidth, duration: v.duration})"
        )
        browser.close()
    assert state["error"] is None and state["width"] == 64 and state["duration"] > 0.5
    assert any("/v1/predict-video?progress_id=" in url for url in sent)  # so the page can ask how far it got
