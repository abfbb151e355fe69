"""Edge deployment with OpenVINO: notebook 06's conversion, quantization and benchmarks.

A trained PyTorch model becomes an OpenVINO IR (`openvino.convert_model`, then
`openvino.save_model`) in three precisions: FP32, FP32 with FP16-compressed
weights, and INT8 by NNCF post-training quantization on a calibration subset
of the *train* split. Next to every IR lies a plain-JSON card (task, classes,
input size, normalisation), so loading a deployed model never runs code from a
file. Benchmarks time the OpenVINO runtime and eager PyTorch one way, in one
run, on the same thread count. Running an IR afterwards (the predictor,
`python -m helpers predict`, and the server) needs no PyTorch: `helpers.runtime`.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import course, numerics, tables
from .artifacts import read_json, write_json
from .measure import latency_ms, parameter_count, time_call, weights_mb
from .paths import published
from .runtime import (
    TASKS,
    compile_ir,
    infer,
    precision_label,
    probabilities,
    read_card,
    to_input,
)
from .training import IMAGENET_MEAN, IMAGENET_STD, extract_features

PRECISIONS = ("FP32", "FP16", "INT8")


def card(
    task: str, classes: list[str], input_size: int, architecture: str, source: str, threshold: float = 0.5
) -> dict:
    """What a deployed model needs besides its weights, as plain JSON."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return {
        "task": task,
        "classes": list(classes),
        "input_size": int(input_size),
        "layout": "NCHW, RGB",
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "scale": "pixels / 255, then (x - mean) / std",
        "threshold": threshold if task == "segmentation" else None,
        "architecture": architecture,
        "source": source,
    }


def models_to_deploy(tasks: list[str], kd_dir: Path, seg_dir: Path, image_size: int) -> tuple[dict, dict]:
    """Notebook 03's student chosen on validation and its teacher, notebook 04's chosen segmenter, with their cards.

    Read from the indexes those notebooks wrote (`classify.save_students`,
    the segmentation models' index.json); returns (models, cards) by name.
    """
    from . import classify, segment

    models, cards = {}, {}
    if "classification" in tasks:
        index = read_json(Path(kd_dir) / "students" / "index.json")
        best, teacher = index["best"], read_json(Path(kd_dir) / "teacher.json")
        models["student"], models["teacher"] = classify.load_saved(kd_dir, best), classify.load_saved(kd_dir)
        for name, arch, source in (
            ("student", index["checkpoints"][best]["model"], f"students/{best}"),
            ("teacher", teacher["model"], "teacher"),
        ):
            weights = f"{course.folder(course.KD)}/{source}.pt"
            cards[name] = card("classification", index["classes"], image_size, arch, weights)
    if "segmentation" in tasks:
        index = read_json(Path(seg_dir) / "index.json")
        entry = index["checkpoints"][index["best"]]
        models["segmenter"] = segment.load_model(seg_dir, index["best"])
        cards["segmenter"] = card(
            "segmentation",
            ["background", "polyp"],
            image_size,
            f"{entry['arch']}/{entry['encoder']}",
            f"{course.folder(course.SEG)}/models/{index['best']}.pt",
        )
    return models, cards


def deployment_frames(
    task: str,
    profile: str,
    reports_root: str,
    image_size: int,
    calibration_frames: int,
    rng: np.random.Generator,
    classes: list[str] | None = None,
) -> dict:
    """What a deployed model meets: `calibration_frames` train frames (INT8 ranges), the validation frames (INT8's
    agreement check), the test frames, their files and their labels (class indices or masks)."""
    from .data import load_split

    train, _ = load_split(task, "train", profile, reports_root, image_size)
    test, rows = load_split(task, "test", profile, reports_root, image_size)
    val, _ = load_split(task, "val", profile, reports_root, image_size)
    pick = rng.choice(len(train.images), min(calibration_frames, len(train.images)), replace=False)
    labels = np.array([classes.index(c) for c in rows["label"]]) if task == "classification" else test.masks
    return {
        "calibration": train.images[pick],
        "validation": val.images,
        "test": test.images,
        "test_files": [str(s.image) for s in test.samples],
        "labels": labels,
    }


def accuracy_by_precision(
    models: dict[str, nn.Module],
    cards: dict[str, dict],
    irs: dict[str, dict[str, Path]],
    frames: dict[str, dict],
    measured: dict[tuple[str, str], str],
    threads: int | None = None,
) -> pd.DataFrame:
    """Every model on every test frame in PyTorch and in each IR: parity (max |logit difference| to PyTorch), the
    test metrics, the change against PyTorch, and for classifiers how many predictions changed."""
    from . import classify, segment

    rows = []
    for name, model_card in cards.items():
        task, f = model_card["task"], frames[model_card["task"]]
        reference = extract_features(models[name], f["test"], desc=f"{name} PyTorch")
        runs = {"PyTorch FP32": reference}
        runs |= {
            f"OpenVINO {p}": infer(compile_ir(xml, threads), f["test"], model_card) for p, xml in irs[name].items()
        }
        for runtime, logits in runs.items():
            proba = probabilities(logits, task)
            if task == "classification":
                m = classify.metrics(f["labels"], proba, model_card["classes"])
                changed = int((proba.argmax(1) != probabilities(reference, task).argmax(1)).sum())
                scores = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "predictions changed": changed}
            else:
                per_image = segment.per_image_metrics(proba >= model_card["threshold"], f["labels"])
                scores = {"dice": per_image["dice"].mean(), "iou": per_image["iou"].mean()}
            rows.append(
                {
                    "model": name,
                    "task": task,
                    "runtime": runtime,
                    "measured precision": measured.get((name, runtime), "FP32"),
                    "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                    **scores,
                }
            )
    table = pd.DataFrame(rows)
    for metric in ("accuracy", "macro_f1", "dice", "iou"):
        if metric in table:
            table[f"{metric} change"] = table[metric] - table.groupby("model")[metric].transform("first")
    return table


def _convert(model: nn.Module, size: int):
    import openvino as ov

    model = copy.deepcopy(model).eval().cpu()
    with torch.no_grad(), warnings.catch_warnings():
        # OpenVINO's PyTorch frontend traces with torch.jit, which PyTorch now marks deprecated: not ours to fix
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace", category=FutureWarning)
        return ov.convert_model(model, example_input=torch.zeros(1, 3, size, size), input=[(1, 3, size, size)])


def _decisions(outputs: np.ndarray, model_card: dict) -> np.ndarray:
    """What a user sees: the predicted class per frame, or the binary mask."""
    proba = probabilities(outputs, model_card["task"])
    return proba.argmax(1) if model_card["task"] == "classification" else proba >= model_card["threshold"]


def agreement(a: np.ndarray, b: np.ndarray, task: str) -> float:
    """How far two models' decisions agree: share of equal classes, or mean per-frame Dice of the masks."""
    if task == "classification":
        return float(np.mean(a == b))
    from .segment import per_image_metrics

    return float(per_image_metrics(a, b)["dice"].mean())


def _agreement_metric(model_card: dict):
    """NNCF validation function: agreement of a compiled model with the FP32 decisions stored with each frame."""

    def metric(compiled, items) -> float:
        frames, reference = zip(*items)
        out = np.concatenate([compiled(to_input(f[None], model_card))[0] for f in frames])
        return agreement(_decisions(out, model_card), np.stack(reference), model_card["task"])

    return metric


def export(
    model: nn.Module,
    model_card: dict,
    out_dir: Path,
    name: str,
    calibration: np.ndarray,
    precisions: tuple[str, ...] = PRECISIONS,
    validation: np.ndarray | None = None,
    max_drop: float = 0.01,
    fast_bias_correction: bool = False,
) -> dict[str, Path]:
    """Write `<name>_<precision>.xml/.bin/.json` for each precision; returns the .xml paths.

    `calibration` (uint8 frames of the train split, never test) feeds NNCF's
    INT8 quantization. With `validation` (frames of the validation split) INT8
    uses NNCF's accuracy control against the FP32 model itself: the layers
    whose quantization costs the most are reverted to FP32 until INT8 agrees
    with FP32 on all but `max_drop` of the validation decisions (classes, or
    mask Dice). Agreement, not accuracy: flips that happen to cancel out in an
    accuracy count are still caught, and no labels are needed. Bias
    correction is NNCF's full algorithm, not its default fast one: on the
    `cpu` student it halves how far INT8 probabilities move from FP32 on the
    validation split (`benchmarks/int8_recipes.py`). Files are written in a
    temporary folder and moved into place only when complete.
    """
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" when nncf loads
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)  # its INFO lines and progress bars would flood notebooks and logs
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size, written = model_card["input_size"], {}
    for precision in precisions:
        ov_model = _convert(model, size)
        if precision == "INT8":
            dataset = nncf.Dataset(list(calibration), lambda frame: to_input(frame[None], model_card))
            with warnings.catch_warnings():  # rich (NNCF's progress bar) asks for ipywidgets inside Jupyter
                warnings.filterwarnings("ignore", message='install "ipywidgets"', category=UserWarning)
                if validation is None:
                    ov_model = nncf.quantize(
                        ov_model, dataset, subset_size=len(calibration), fast_bias_correction=fast_bias_correction
                    )
                else:
                    fp32 = extract_features(model, validation, desc="FP32 decisions")  # same normalisation as to_input
                    checked = nncf.Dataset(
                        list(zip(validation, _decisions(fp32, model_card))),
                        lambda item: to_input(item[0][None], model_card),
                    )
                    ov_model = nncf.quantize_with_accuracy_control(
                        ov_model,
                        dataset,
                        checked,
                        validation_fn=_agreement_metric(model_card),
                        max_drop=max_drop,
                        drop_type=nncf.DropType.ABSOLUTE,
                        subset_size=len(calibration),
                        fast_bias_correction=fast_bias_correction,
                    )
        elif precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        stem = f"{name}_{precision.lower()}"
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            ov.save_model(ov_model, Path(tmp) / f"{stem}.xml", compress_to_fp16=precision == "FP16")
            int8 = {
                "calibration_frames": len(calibration),
                "fast_bias_correction": fast_bias_correction,
                "accuracy_control": None
                if validation is None
                else {
                    "validation_frames": len(validation),
                    "max_drop": max_drop,
                    "metric": "agreement with the FP32 model (classes, or mask Dice)",
                },
            }
            if precision == "INT8":
                int8["quantization"] = quantization(ov.Core().read_model(Path(tmp) / f"{stem}.xml"))
            write_json(
                Path(tmp) / f"{stem}.json",
                {**model_card, "precision": precision, **(int8 if precision == "INT8" else {})},
            )
            for suffix in (".bin", ".json", ".xml"):  # the .xml last: its presence means the set is complete
                os.replace(Path(tmp) / f"{stem}{suffix}", out_dir / f"{stem}{suffix}")
        written[precision] = out_dir / f"{stem}.xml"
    return written


COMPUTE_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData")
LOW_PRECISION = ("i8", "u8", "i4", "u4")
INT8_SHARE = 0.9  # "INT8" only when this share of the compute-heavy ops and of their weights is INT8


WEIGHT_PATH = ("Convert", "Reshape", "Transpose", "Subtract", "Multiply", "Unsqueeze", "Squeeze")
# Ops that move quantized values without computing new ones: an input quantized before them stays quantized.
KEEPS_QUANTIZED = (
    "Concat",
    "MaxPool",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Pad",
    "Interpolate",
    "DepthToSpace",
    "SpaceToDepth",
    "Split",
    "VariadicSplit",
    "StridedSlice",
    "Relu",
)


def _weights(output) -> object:
    """The node holding an op's weights, looking through the converts and scales of a dequantization."""
    node = output.get_node()
    while node.get_type_name() in WEIGHT_PATH:
        node = node.input_value(0).get_node()
    return node


def _quantized(output, depth: int = 0) -> bool:
    """Whether an activation reaches an op on the INT8 grid: from a FakeQuantize, directly or through ops that
    only move values (a Concat counts when every input does)."""
    node = output.get_node()
    kind = node.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind not in KEEPS_QUANTIZED or depth > 32:
        return False
    inputs = range(node.get_input_size()) if kind == "Concat" else [0]
    return all(_quantized(node.input_value(i), depth + 1) for i in inputs)


def quantization(ov_model) -> dict:
    """What of a model really is INT8, read from its graph (not from what was asked for).

    A compute-heavy op (convolution, matmul) counts as INT8 when its weights
    are stored as 8-bit (or lower) integers and its input comes from a
    FakeQuantize (directly, or through ops that only move values). NNCF's accuracy control reverts
    ops to FP32; they show up here, named. `label` is what tables print.
    """
    ops, int8_ops, fp_ops = 0, 0, []
    int8_weights, all_weights = 0, 0
    for node in ov_model.get_ordered_ops():
        if node.get_type_name() not in COMPUTE_OPS or node.get_input_size() < 2:
            continue
        weight = _weights(node.input_value(1))
        if weight.get_type_name() != "Constant":
            continue  # an activation x activation matmul: no weights to quantize
        ops += 1
        size = int(np.prod(list(weight.get_output_shape(0))))
        all_weights += size
        low = weight.get_output_element_type(0).get_type_name() in LOW_PRECISION
        if low and _quantized(node.input_value(0)):
            int8_ops += 1
            int8_weights += size
        else:
            fp_ops.append(node.get_friendly_name())
    share = int8_ops / ops if ops else 0.0
    weight_share = int8_weights / all_weights if all_weights else 0.0
    label = (
        "INT8"
        if min(share, weight_share) >= INT8_SHARE
        else f"partly INT8 ({share:.0%} of compute ops, {weight_share:.0%} of weights)"
        if share > 0
        else "not INT8 (no op quantized)"
    )
    return {
        "compute_ops": ops,
        "int8_ops": int8_ops,
        "int8_op_share": round(share, 4),
        "int8_weight_share": round(weight_share, 4),
        "fp32_ops": fp_ops,
        "label": label,
    }


def quantization_table(irs: dict[str, dict[str, Path]]) -> pd.DataFrame:
    """Per model and precision: what was asked for, what the graph really is, and the ops left in floating point."""
    import pandas as pd

    rows = []
    for name, by_precision in irs.items():
        for precision, xml in by_precision.items():
            meta = read_card(xml)
            q = meta.get("quantization") or {}
            rows.append(
                {
                    "model": name,
                    "requested": precision,
                    "measured precision": precision_label(meta),
                    "int8 compute ops": f"{q['int8_ops']}/{q['compute_ops']}" if q else "",
                    "int8 weight share": q.get("int8_weight_share"),
                    "size_MB": ir_size_mb(xml),
                    "ops left in float": ", ".join(q.get("fp32_ops", [])[:6])
                    + (" …" if len(q.get("fp32_ops", [])) > 6 else ""),
                    "rollback rule": rollback_rule(meta),
                }
            )
    return pd.DataFrame(rows)


def story_table(accuracy: pd.DataFrame, bench: pd.DataFrame, cards: dict, measured: dict) -> pd.DataFrame:
    """Teacher in PyTorch -> student in PyTorch -> student in OpenVINO INT8: size, speed and accuracy, side by side.

    `accuracy` and `bench` have one row per (model, runtime); `measured` maps
    (model, runtime) to the precision read from the IR's graph, which the
    table shows instead of the requested one.
    """
    rows = []
    for model, runtime in (("teacher", "PyTorch FP32"), ("student", "PyTorch FP32"), ("student", "OpenVINO INT8")):
        a = accuracy[(accuracy["model"] == model) & (accuracy["runtime"] == runtime)].iloc[0]
        b = bench[(bench["model"] == model) & (bench["runtime"] == runtime)].iloc[0]
        shown = runtime if runtime.startswith("PyTorch") else f"OpenVINO, measured: {measured[(model, runtime)]}"
        rows.append(
            {
                "step": f"{model} ({cards[model]['architecture']}), {shown}",
                "size_MB": b["size_MB"],
                "latency_median_ms": b["latency_median_ms"],
                "throughput_fps": b["throughput_fps"],
                "accuracy": a["accuracy"],
                "macro_f1": a["macro_f1"],
            }
        )
    story = pd.DataFrame(rows)
    story["speed-up vs teacher"] = story["latency_median_ms"].iloc[0] / story["latency_median_ms"]
    story["smaller than teacher"] = story["size_MB"].iloc[0] / story["size_MB"]
    return story


def deployment_markdown(
    provenance: str,
    versions: str,
    quantized: pd.DataFrame,
    by_task: dict[str, pd.DataFrame],
    bench: pd.DataFrame,
    checks: pd.DataFrame,
    story: pd.DataFrame | None,
) -> str:
    """deployment.md: what each IR is, accuracy and parity per task (`by_task`: task -> (frames, table)), speed."""
    parts = [provenance, "", versions, "", "## What each IR really is", ""]
    parts += [
        "Read from each saved graph: INT8 only when at least 90% of the compute ops and of their weights are 8-bit."
    ]
    parts += [
        "",
        tables.markdown(quantized, 3),
        "",
        "## Accuracy and parity per precision",
        "",
    ]
    for task, (frames, table) in by_task.items():
        parts += [f"{task}, test split ({frames} frames):", "", tables.markdown(table, 4), ""]
    parts += ["## Speed", "", tables.markdown(bench, 3), ""]
    parts += ["## Cross-check with benchmark_app", "", tables.markdown(checks.drop(columns="command"), 3)]
    if UNPINNED in checks:
        parts += ["", f"`{UNPINNED}`: the same command without the run's instruction-set pins (`helpers.numerics`)."]
    if story is not None:
        parts += ["", "## Teacher -> student -> student INT8", "", tables.markdown(story, 3)]
    return "\n".join(parts) + "\n"


def rollback_rule(card: dict) -> str:
    """Why accuracy control may leave ops in float: the bar an INT8 IR had to clear, in frames where it counts them.

    Agreement is a share of validation frames, so `max_drop` below 1/frames allows no disagreeing frame at all:
    one frame that changes class is enough to send layers back to FP32.
    """
    control = card.get("accuracy_control")
    if card.get("precision") != "INT8" or not control:
        return ""
    frames, drop = control["validation_frames"], control["max_drop"]
    if card.get("task") == "classification":
        allowed = int(drop * frames + 1e-9)
        return (
            f"INT8 must give the FP32 class on at least {1 - drop:.0%} of {frames} validation frames: "
            f"{allowed} disagreeing frame{'' if allowed == 1 else 's'} allowed"
        )
    return (
        f"INT8 masks must keep a mean Dice of at least {1 - drop:.2f} with the FP32 masks on {frames} validation frames"
    )


def model_table(models: dict[str, nn.Module], cards: dict[str, dict]) -> pd.DataFrame:
    """What is deployed: each model's task, architecture, checkpoint and size in millions of parameters."""
    return pd.DataFrame(
        [
            {"model": n, "task": c["task"], "architecture": c["architecture"], "checkpoint": c["source"]}
            | {"parameters_M": parameter_count(models[n]) / 1e6}
            for n, c in cards.items()
        ]
    )


def ir_size_mb(xml: Path) -> float:
    return (Path(xml).stat().st_size + Path(xml).with_suffix(".bin").stat().st_size) / 1e6


def bench_openvino(
    xml: Path, threads: int, repeats: int = 50, warmup: int = 10, requests: int = 4, async_frames: int = 200
) -> dict:
    """Batch-1 synchronous latency (median, p90) and asynchronous throughput with `requests` requests."""
    import openvino as ov

    size = read_card(xml)["input_size"]
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    request = compile_ir(xml, threads, "LATENCY").create_infer_request()
    lat = time_call(lambda: request.infer({0: x}), repeats, warmup)
    queue = ov.AsyncInferQueue(compile_ir(xml, threads, "THROUGHPUT", streams=requests), requests)
    for _ in range(requests):  # warm-up of every request
        queue.start_async({0: x})
    queue.wait_all()
    start = time.perf_counter()
    for _ in range(async_frames):
        queue.start_async({0: x})
    queue.wait_all()
    return {
        "latency_median_ms": lat["median_ms"],
        "latency_p90_ms": lat["p90_ms"],
        "throughput_fps": async_frames / (time.perf_counter() - start),
        "requests": requests,
        "threads": threads,
        "size_MB": ir_size_mb(xml),
    }


def bench_torch(model: nn.Module, size: int, threads: int, repeats: int = 50, warmup: int = 10) -> dict:
    """Eager PyTorch FP32 at batch 1, same shape and threads; throughput is back-to-back synchronous calls."""
    lat = latency_ms(model, (1, 3, size, size), repeats=repeats, warmup=warmup, threads=threads)
    return {
        "latency_median_ms": lat["median_ms"],
        "latency_p90_ms": lat["p90_ms"],
        "throughput_fps": 1e3 / lat["median_ms"],
        "requests": 1,
        "threads": lat["threads"],
        "size_MB": weights_mb(model),
    }


def bench_table(
    models: dict[str, nn.Module],
    irs: dict[str, dict[str, Path]],
    size: int,
    threads: int,
    repeats: int,
    requests: int,
    async_frames: int,
    measured: dict[tuple[str, str], str],
) -> pd.DataFrame:
    """Each model in eager PyTorch FP32 and in each of its IRs, one harness and thread count, with ratios to PyTorch.

    `measured` maps (model, "OpenVINO <requested>") to the precision read from the IR's graph.
    """
    rows = []
    for name, model_irs in irs.items():
        rows.append({"model": name, "runtime": "PyTorch FP32", **bench_torch(models[name], size, threads, repeats)})
        for precision, xml in model_irs.items():
            speed = bench_openvino(xml, threads, repeats, requests=requests, async_frames=async_frames)
            rows.append({"model": name, "runtime": f"OpenVINO {precision}", **speed})
    bench = pd.DataFrame(rows)
    bench.insert(2, "measured precision", [measured.get(k, "FP32") for k in zip(bench["model"], bench["runtime"])])
    pytorch = bench.groupby("model")  # each model's first row is its PyTorch one
    bench["speed-up vs PyTorch"] = pytorch["latency_median_ms"].transform("first") / bench["latency_median_ms"]
    bench["size vs PyTorch"] = bench["size_MB"] / pytorch["size_MB"].transform("first")
    return bench


def benchmark_app(xml: Path, threads: int, seconds: int = 5, unpinned: bool = False) -> dict:
    """OpenVINO's own `benchmark_app` on the same IR, shape and threads: one stream, synchronous, f32 inference.

    `unpinned` runs it without the run's instruction-set pins, on every instruction set the CPU has.
    """
    size = read_card(xml)["input_size"]
    tool = shutil.which("benchmark_app", path=str(Path(sys.executable).parent)) or shutil.which("benchmark_app")
    if tool is None:
        raise FileNotFoundError("benchmark_app not found next to this Python (it ships with the openvino package)")
    # benchmark_app accepts -nthreads only with -hint none; one stream, one synchronous request = our latency setting
    # run next to the IR so that the recorded command holds no absolute path and can be re-run from that folder
    args = [
        "-m",
        Path(xml).name,
        "-d",
        "CPU",
        "-hint",
        "none",
        "-nstreams",
        "1",
        "-nireq",
        "1",
        "-api",
        "sync",
        "-nthreads",
        str(threads),
        "-t",
        str(seconds),
        "-shape",
        f"[1,3,{size},{size}]",
        "-infer_precision",
        "f32",
    ]
    env = numerics.unpinned_environment() if unpinned else None
    out = subprocess.run([tool, *args], capture_output=True, text=True, check=False, cwd=Path(xml).parent, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark_app failed ({out.returncode}): {out.stderr.strip()[-500:] or out.stdout[-500:]}")
    median = re.search(r"Median:\s+([\d.]+)\s*(ms|us)", out.stdout)  # it switches to microseconds for fast models
    fps = re.search(r"Throughput:\s+([\d.]+)\s*FPS", out.stdout)
    if not (median and fps):
        raise RuntimeError(f"could not read benchmark_app's report:\n{out.stdout[-800:]}")
    scale = 1e-3 if median.group(2) == "us" else 1.0
    return {
        "latency_median_ms": float(median.group(1)) * scale,
        "throughput_fps": float(fps.group(1)),
        "command": " ".join(["benchmark_app", *args]),
    }


UNPINNED = "benchmark_app_median_ms, CPU's own instructions"


def benchmark_app_checks(
    bench: pd.DataFrame, irs: dict[str, dict[str, Path]], names: list[str], threads: int, seconds: int
) -> pd.DataFrame:
    """Our latency beside benchmark_app's for each FP32 and INT8 IR of `names`, on the run's code path; when the
    run is pinned, benchmark_app again without the pins (`pinned / own` > 1: what the pin costs in speed)."""
    rows = []
    for name in names:
        for precision in ("FP32", "INT8"):
            ours = bench[(bench["model"] == name) & (bench["runtime"] == f"OpenVINO {precision}")].iloc[0]
            app = benchmark_app(irs[name][precision], threads, seconds)
            row = {
                "model": name,
                "precision": precision,
                "ours_median_ms": ours["latency_median_ms"],
                "benchmark_app_median_ms": app["latency_median_ms"],
                "ratio (ours / benchmark_app)": ours["latency_median_ms"] / app["latency_median_ms"],
                "benchmark_app_fps (latency hint)": app["throughput_fps"],
            }
            if numerics.pinned_isa():
                own = benchmark_app(irs[name][precision], threads, seconds, unpinned=True)["latency_median_ms"]
                row |= {UNPINNED: own, "pinned / own": app["latency_median_ms"] / own}
            rows.append({**row, "command": app["command"]})
    return pd.DataFrame(rows)


def pin_cost_line(checks: pd.DataFrame, cpu_flags: list[str]) -> str:
    """What the numeric pin does to the speeds the run reports: measured by `benchmark_app_checks`."""
    if UNPINNED not in checks:
        return "- Speeds were measured on every instruction set of this CPU (the run's numerics are not pinned)."
    cost = checks["pinned / own"]
    rows = "; ".join(
        f"{r.model} {r.precision} {r.benchmark_app_median_ms:.2f} -> {r[UNPINNED]:.2f} ms" for _, r in checks.iterrows()
    )
    wide = [f for f in cpu_flags if f in ("avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni") or f.startswith("amx")]
    if cost.min() > 1.1:
        verdict = f"ran the same IRs {cost.min():.1f}-{cost.max():.1f}x faster"
    elif cost.min() > 0.9 and cost.max() < 1.1:
        verdict = "ran the same IRs about as fast (within 10%)"
    else:
        verdict = f"ran some IRs faster and some not (pinned / own {cost.min():.2f}-{cost.max():.2f})"
    return (
        "- Every speed above is on the run's pinned code path (oneDNN capped at AVX2, so that results are the same on "
        "any CPU: `helpers.numerics`; PyTorch and OpenVINO alike, so the speed-ups compare like with like). On this "
        f"CPU's own instructions ({', '.join(wide) or 'nothing beyond AVX2'}), "
        f"which a deployment would use, benchmark_app {verdict} ({rows})."
    )


BAD_DEMO_FILES = ("empty.jpg", "notes.jpg", "truncated.jpg")


def predict_command(model: Path, inputs: Path, out: Path) -> str:
    """The shell command that runs the predictor as the notebook did, with the paths the reader will find.

    During a run a notebook writes into the run's staging copy; once the run succeeds that copy is moved
    into place, so the command names the final paths (`paths.published`).
    """
    return f"python -m helpers predict --model {published(model)} --input {published(inputs)} --out {published(out)}"


def demo_inputs(folder: Path, files: dict[str, list[str]]) -> Path:
    """A folder for the predictor's demo: copies of `files` (task -> paths, named `<task>_<name>`) plus three bad
    files a real folder of frames can hold: an empty one, a text file named .jpg, and a JPEG cut off after a third."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    for task, paths in files.items():
        for f in paths:
            shutil.copy(f, folder / f"{task[:3]}_{Path(f).name}")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    good = next((p for p in sorted(folder.iterdir()) if p.stat().st_size > 100), None)
    if good is None:
        raise ValueError(f"{folder}: no frame of over 100 bytes to cut short among {files}")
    (folder / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    return folder
