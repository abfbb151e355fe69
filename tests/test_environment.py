"""The lock file is the one source of pins; environment.yml must mirror it."""

import os
import re

import pytest
import yaml

from helpers import paths

ROOT = paths.repo_root()


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            assert "==" in line, f"requirements.lock: {line!r} is not an exact pin"
            name, version = line.split(";")[0].strip().split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_environment_yml_mirrors_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    lock = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert [p for p in pip if p != "-e ."] == lock


def test_every_top_level_dependency_is_pinned():
    pins = lock_pins()
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = re.split(r"[=<>!]", line)[0].lower().replace("_", "-")
        assert name in pins, f"{name} from requirements.in is missing in requirements.lock"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_artifacts_are_readable_like_ordinary_files(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.artifacts import save_figure, write_json

    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a.json", {"x": 1})
        save_figure(plt.figure(), tmp_path, "fig", caption="Data: test")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "fig.png").stat().st_mode & 0o777) == oct(0o644)


def test_figure_caption_sits_under_the_drawing_wrapped_to_its_width(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from helpers.artifacts import add_caption, save_figure

    def drawn():
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([0, 1], [0, 1])
        ax.set_xticks([0, 1], ["a long rotated tick label", "another one"], rotation=60)
        return fig

    plain = drawn()
    plain.savefig(tmp_path / "plain.png", dpi=50, bbox_inches="tight")
    fig = drawn()
    renderer = fig.canvas.get_renderer()
    content_bottom = fig.get_tightbbox(renderer).y0 * fig.dpi  # display units, rotated labels included
    caption = "Data: synthetic Kvasir layout (fingerprint 0123456789ab) · split: test · run seed 0 · profile cpu " * 3
    add_caption(fig, caption)
    text = fig.texts[-1]
    box = text.get_window_extent(renderer)
    assert box.y1 < content_bottom, "the caption must not cover the axis or its tick labels"
    assert text.get_text().count("\n") >= 2, "a long caption is wrapped to the drawing's width"
    assert text.get_text().replace("\n", " ").split() == caption.split(), "wrapping keeps every word"

    save_figure(drawn(), tmp_path, "captioned", caption=caption, dpi=50)
    (w0, h0), (w1, h1) = Image.open(tmp_path / "plain.png").size, Image.open(tmp_path / "captioned.png").size
    assert h0 < h1 < h0 + 60, "the caption adds a few lines of height, not an empty band"
    assert w1 <= w0 + 5, "the wrapped caption does not widen the figure"

    with pytest.raises(ValueError, match="caption"):
        save_figure(drawn(), tmp_path, "uncaptioned", caption=" ")
    assert not (tmp_path / "uncaptioned.png").exists()


def test_the_report_gives_each_figure_its_caption_as_alt_text(tmp_path):
    """The caption is kept in the PNG (Description) and read back for the report's alt text, brackets and all."""
    import html

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers.artifacts import figure_caption, save_figure
    from helpers.report import _image, to_html

    caption = 'Data: synthetic (fingerprint 0123) · split: test · seeds [0, 1] · area in [0.1, 0.4) · "profile" cpu'
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1])
    save_figure(fig, tmp_path / "stage", "curve", caption=caption, dpi=40)
    assert figure_caption(tmp_path / "stage" / "curve.png") == caption
    page = to_html(_image(tmp_path / "stage", "curve.png"), tmp_path, "t")
    alt = re.search(r'<img src="data:image/png;base64,[^"]+" alt="([^"]*)"', page)
    assert alt and html.unescape(alt.group(1)) == caption

    plt.subplots()[0].savefig(tmp_path / "stage" / "old.png")  # a PNG from before captions were kept
    assert "![stage old.png](stage/old.png)" == _image(tmp_path / "stage", "old.png")
