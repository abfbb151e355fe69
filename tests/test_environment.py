"""The lock file is the one source of pins; environment.yml must mirror it."""

import os
import re

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
        save_figure(plt.figure(), tmp_path, "fig")
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "fig.png").stat().st_mode & 0o777) == oct(0o644)
