"""Running an exported IR: its card, its input, its outputs, with OpenVINO alone.

What the predictor (`python -m helpers predict`) and the model server
(`helpers.serve`) need once notebook 06 has written an IR and its JSON
card. Nothing here imports PyTorch: a deployment needs the runtime, not the
training framework (importing it costs ~600 MB and 2 s per process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from .artifacts import read_json

TASKS = ("classification", "segmentation")
CARD_KEYS = ("task", "classes", "input_size", "mean", "std", "precision")
MAX_PIXELS = 40_000_000  # the predictor refuses larger frames (real Kvasir frames are at most ~2 MP)


def to_input(images: np.ndarray, model_card: dict) -> np.ndarray:
    """uint8 N x H x W x 3 frames (already input_size) -> the normalised float32 N x 3 x H x W the IR expects."""
    x = images.astype(np.float32) / 255.0
    x = (x - np.array(model_card["mean"], np.float32)) / np.array(model_card["std"], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def precision_label(model_card: dict) -> str:
    """The precision a table may print for an IR: INT8 only when its graph is (see `deploy.quantization`)."""
    if model_card.get("precision") != "INT8":
        return model_card.get("precision", "?")
    return (model_card.get("quantization") or {}).get("label", "INT8 (not inspected)")


def read_card(xml: Path) -> dict:
    """The JSON card next to an IR, checked; a clear error naming the file otherwise."""
    path = Path(xml).with_suffix(".json")
    if not path.is_file():
        raise ValueError(f"{path}: missing model card (the JSON written next to the IR by helpers.deploy.export)")
    try:
        meta = read_json(path)
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in CARD_KEYS if k not in meta]
    if missing or meta.get("task") not in TASKS:
        raise ValueError(f"{path}: not a model card (missing {missing or 'a known task'})")
    return meta


def check_card(xml: Path) -> dict:
    """The card, checked against the IR's real input and output shapes before any file is read.

    A card that disagrees with its graph would give tracebacks, or silently
    wrong columns (4 class names for 3 outputs) or empty masks (std 0): each
    is a ValueError naming the file and the mismatch, as is an IR OpenVINO
    cannot read (a truncated .bin).
    """
    import openvino as ov

    meta = read_card(xml)
    where = Path(xml).with_suffix(".json")
    try:
        model = ov.Core().read_model(str(xml))
    except RuntimeError as exc:
        raise ValueError(f"{xml}: OpenVINO cannot read this IR ({str(exc).strip().splitlines()[0][:200]})") from None
    shape_in = [int(d) for d in model.input(0).get_partial_shape().to_shape()]
    shape_out = [int(d) for d in model.output(0).get_partial_shape().to_shape()]
    size = meta["input_size"]
    problems = []
    if shape_in != [1, 3, size, size]:
        problems.append(f"input_size {size} but the IR takes {shape_in}")
    if meta["task"] == "classification" and shape_out != [1, len(meta["classes"])]:
        problems.append(f"{len(meta['classes'])} classes but the IR outputs {shape_out}")
    if meta["task"] == "segmentation" and shape_out != [1, 1, size, size]:
        problems.append(f"task segmentation but the IR outputs {shape_out}, not [1, 1, {size}, {size}]")
    for key in ("mean", "std"):
        values = meta[key]
        if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)):
            problems.append(f"{key} must be 3 numbers, not {values!r}")
    if not problems and min(meta["std"]) <= 0:
        problems.append(f"std must be positive, not {meta['std']}")
    if problems:
        raise ValueError(f"{where}: the card does not fit its IR {Path(xml).name}: " + "; ".join(problems))
    return meta


def compile_ir(xml: Path, threads: int | None = None, hint: str = "LATENCY", streams: int | None = None):
    """Compile an IR for the CPU with f32 inference precision (so FP32 parity is exact, not bf16)."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    if streams:
        config["NUM_STREAMS"] = int(streams)
    return ov.Core().compile_model(str(xml), "CPU", config)


def infer(compiled, images: np.ndarray, model_card: dict) -> np.ndarray:
    """Raw outputs (logits) for uint8 frames, one frame per request (the IR has batch 1)."""
    request = compiled.create_infer_request()
    x = to_input(images, model_card)
    return np.concatenate([request.infer({0: x[i : i + 1]})[0].copy() for i in range(len(x))])


def probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """Class probabilities (softmax) or per-pixel polyp probabilities (sigmoid, N x H x W)."""
    if task == "classification":
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)
    return 1 / (1 + np.exp(-logits[:, 0]))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: a leading =, +, -, @ would start a formula (`=1+2.jpg`)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def read_frame(path: Path, max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """A file as 8-bit RGB at full resolution, plus a note on any conversion; ImageProblem says why not.

    Grayscale, palette, 16-bit, CMYK and alpha images are converted (noted);
    empty, non-image, truncated and oversized files are refused.
    """
    from PIL import Image

    from .data.images import ImageProblem, decode

    limit = max_pixels or MAX_PIXELS
    data = Path(path).read_bytes()
    if data:
        try:
            with Image.open(Path(path)) as im:
                mode, (w, h) = im.mode, im.size
        except Exception:  # decode() below names the problem
            mode, w, h = "", 0, 0
        if w * h > limit:
            raise ImageProblem(
                f"image is {w}x{h} = {w * h / 1e6:.2f} MP, over the predictor's limit of {limit / 1e6:g} MP"
            )
    pixels, _ = decode(data, None, "image")
    return pixels, "" if mode in ("", "RGB") else f"converted from mode {mode} to RGB"


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """One 8-bit RGB frame resized to the model's square input (bilinear), as the predictor and the server feed it."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def mask_at(proba: np.ndarray, threshold: float, shape: tuple[int, ...]) -> np.ndarray:
    """The polyp mask (bool) of one probability map, at a frame's own size (`shape`: height, width, ...)."""
    from PIL import Image

    small = Image.fromarray((proba >= threshold).astype(np.uint8))
    return np.asarray(small.resize((shape[1], shape[0]), Image.NEAREST)) > 0


def overlay(image: np.ndarray, mask: np.ndarray, colour=(0, 255, 0), alpha: float = 0.35) -> np.ndarray:
    """Image with the mask tinted in and its outline drawn, for eyeballing label quality.

    Here, not in `eda`, so that the server draws overlays without importing matplotlib and seaborn: a fresh
    server's first overlay request imported them (1.5 s on this machine, more on a cold disk)."""
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.array(colour, np.float32)
    out[m & ~ndimage.binary_erosion(m, border_value=1)] = colour
    return out.clip(0, 255).astype(np.uint8)


def predict_files(
    xml: Path, inputs: list[Path], out_dir: Path, threads: int | None = None, root: Path | None = None
) -> tuple[list[dict], int]:
    """Run a deployed IR on image files; one result row per file, errors included. Returns (rows, failures).

    Classification rows carry the class and every class probability;
    segmentation rows the polyp area share and the mask and overlay PNGs
    written (at the file's own resolution) under `out_dir`. Files are named
    relative to `root` (the input folder) and PNGs relative to `out_dir`, so
    the CSV stays valid when both folders move.
    """
    from PIL import Image

    from .data.images import ImageProblem

    meta = check_card(xml)
    compiled = compile_ir(xml, threads)
    size, task = meta["input_size"], meta["task"]
    out_dir = Path(out_dir)
    rows, failures = [], 0
    for path in inputs:
        row = {
            "file": safe_cell(str(Path(path).relative_to(root)) if root else str(path)),
            "status": "ok",
            "error": "",
            "note": "",
        }
        try:
            image, row["note"] = read_frame(path)
        except (ImageProblem, OSError) as exc:
            row.update(status="error", error=safe_cell(str(exc)))
            failures += 1
            print(f"error: {path}: {exc}", file=sys.stderr)
            rows.append(row)
            continue
        proba = probabilities(infer(compiled, model_input(image, size)[None], meta), task)[0]
        if task == "classification":
            row["class"] = meta["classes"][int(proba.argmax())]
            row |= {f"p[{c}]": float(p) for c, p in zip(meta["classes"], proba)}
        else:
            mask = mask_at(proba, meta["threshold"], image.shape)
            row["polyp_area"] = float(mask.mean())
            stem = Path(path).name  # the whole name: a.jpg and a.png, a.b.jpg and a_b.jpg stay apart
            for kind, arr in (("mask", mask.astype(np.uint8) * 255), ("overlay", overlay(image, mask, (255, 0, 255)))):
                target = out_dir / kind / f"{stem}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(target)
                row[f"{kind}_png"] = str(target.relative_to(out_dir))
        rows.append(row)
    return rows, failures
