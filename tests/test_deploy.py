"""OpenVINO export (FP32 / FP16 / INT8), parity with PyTorch, the benchmark harness, and the predictor's
handling of every kind of bad input."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from helpers import course, deploy, numerics, paths, runtime
from helpers.__main__ import main

SIZE = 32


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.features(x))


class TinySegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, x):
        return self.net(x)


def _frames(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ir")
    models = {"cls": TinyClassifier().eval(), "seg": TinySegmenter().eval()}
    cards = {
        "cls": deploy.card("classification", ["normal", "polyp", "dyed"], SIZE, "tiny", "test"),
        "seg": deploy.card("segmentation", ["background", "polyp"], SIZE, "tiny", "test"),
    }
    xmls = {k: deploy.export(models[k], cards[k], out, k, calibration=_frames(16)) for k in models}
    return models, cards, xmls


def test_export_writes_three_precisions_with_cards_and_int8_is_quantized(exported):
    _, _, xmls = exported
    for task, by_precision in xmls.items():
        assert set(by_precision) == {"FP32", "FP16", "INT8"}
        for precision, xml in by_precision.items():
            card = deploy.read_card(xml)
            assert card["precision"] == precision and card["input_size"] == SIZE
        assert "FakeQuantize" in xmls[task]["INT8"].read_text()  # NNCF inserted quantize/dequantize pairs
        assert "FakeQuantize" not in xmls[task]["FP32"].read_text()
        fp32, fp16 = (xmls[task][p].with_suffix(".bin").stat().st_size for p in ("FP32", "FP16"))
        assert fp16 < 0.6 * fp32  # weights stored as FP16
    assert not list(xmls["cls"]["FP32"].parent.glob("tmp*"))  # no temporary folder left behind


def test_openvino_fp32_matches_pytorch(exported):
    models, cards, xmls = exported
    frames = _frames(6, seed=1)
    for task in ("cls", "seg"):
        with torch.no_grad():
            reference = models[task](torch.from_numpy(deploy.to_input(frames, cards[task]))).numpy()
        for precision, tolerance in (("FP32", 1e-4), ("FP16", 5e-2)):
            got = deploy.infer(deploy.compile_ir(xmls[task][precision], threads=1), frames, cards[task])
            assert got.shape == reference.shape and np.abs(got - reference).max() < tolerance, (task, precision)


def test_card_errors_name_the_file(tmp_path):
    xml = tmp_path / "m.xml"
    with pytest.raises(ValueError, match="m.json: missing model card"):
        deploy.read_card(xml)
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="m.json: not valid JSON"):
        deploy.read_card(xml)
    (tmp_path / "m.json").write_text(json.dumps({"task": "detection"}))
    with pytest.raises(ValueError, match="m.json: not a model card"):
        deploy.read_card(xml)


def test_benchmark_harness_and_benchmark_app(exported):
    model, _, xmls = exported
    ov = deploy.bench_openvino(xmls["cls"]["INT8"], threads=1, repeats=5, warmup=2, requests=2, async_frames=10)
    pt = deploy.bench_torch(model["cls"], SIZE, threads=1, repeats=5, warmup=2)
    for row in (ov, pt):
        assert row["latency_median_ms"] > 0 and row["latency_p90_ms"] >= row["latency_median_ms"]
        assert row["throughput_fps"] > 0 and row["threads"] == 1 and row["size_MB"] > 0
    app = deploy.benchmark_app(xmls["cls"]["FP32"], threads=1, seconds=1)
    assert app["latency_median_ms"] > 0 and app["throughput_fps"] > 0 and "-nthreads 1" in app["command"]


def test_bench_table_puts_each_ir_beside_its_pytorch_model_and_prints_the_measured_precision(exported):
    models, _, xmls = exported
    measured = {("cls", "OpenVINO INT8"): "INT8", ("cls", "OpenVINO FP16"): "FP16", ("cls", "OpenVINO FP32"): "FP32"}
    bench = deploy.bench_table({"cls": models["cls"]}, {"cls": xmls["cls"]}, SIZE, 1, 3, 2, 6, measured)
    assert list(bench["runtime"]) == ["PyTorch FP32", "OpenVINO FP32", "OpenVINO FP16", "OpenVINO INT8"]
    assert list(bench["measured precision"]) == ["FP32", "FP32", "FP16", "INT8"]
    assert bench["speed-up vs PyTorch"].iloc[0] == 1 and bench["size vs PyTorch"].iloc[0] == 1
    int8 = bench.iloc[3]
    assert int8["size vs PyTorch"] == pytest.approx(int8["size_MB"] / bench["size_MB"].iloc[0])
    table = deploy.model_table(models, {"cls": exported[1]["cls"], "seg": exported[1]["seg"]})
    assert list(table["model"]) == ["cls", "seg"] and (table["parameters_M"] > 0).all()


def test_demo_inputs_copies_the_frames_and_adds_three_bad_files(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(_frames(1, seed=i)[0]).save(frames / f"f{i}.png")
    folder = deploy.demo_inputs(tmp_path / "demo", {"segmentation": sorted(str(p) for p in frames.iterdir())})
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["seg_f0.png", "seg_f1.png", *deploy.BAD_DEMO_FILES])
    assert (folder / "empty.jpg").stat().st_size == 0
    assert 0 < (folder / "truncated.jpg").stat().st_size < (frames / "f0.png").stat().st_size
    assert sorted(p.name for p in frames.iterdir()) == ["f0.png", "f1.png"]  # the user's frames are only read
    with pytest.raises(ValueError, match="no frame of over 100 bytes"):
        deploy.demo_inputs(tmp_path / "nothing", {})


def _good(folder):
    folder.mkdir(exist_ok=True)
    image = Image.fromarray(_frames(1)[0]).resize((60, 45))
    image.save(folder / "good.jpg")
    return image


def _bad_empty(folder):
    (folder / "empty.jpg").write_bytes(b"")


def _bad_text(folder):
    (folder / "notes.jpg").write_text("this is not an image")


def _bad_truncated(folder):
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])


def _bad_huge(folder):
    Image.new("RGB", (400, 300)).save(folder / "huge.png")  # 0.12 MP, over the 0.1 MP limit set below


@pytest.mark.parametrize(
    "make, name, message",
    [
        (_bad_empty, "empty.jpg", "empty file (0 bytes)"),
        (_bad_text, "notes.jpg", "not an image: Pillow cannot identify"),
        (_bad_truncated, "truncated.jpg", "corrupt or truncated image"),
        (_bad_huge, "huge.png", "image is 400x300 = 0.12 MP, over the predictor's limit of 0.1 MP"),
    ],
)
def test_predictor_refuses_a_bad_file_and_still_predicts_the_rest(
    exported, tmp_path, capsys, monkeypatch, make, name, message
):
    _, _, xmls = exported
    folder = tmp_path / "in"
    _good(folder)
    make(folder)
    monkeypatch.setattr(runtime, "MAX_PIXELS", 100_000)
    code = main(
        ["predict", "--model", str(xmls["cls"]["INT8"]), "--input", str(folder), "--out", str(tmp_path / "out")]
    )
    assert code == 1  # any failed file makes the exit code non-zero
    assert f"{name}: {message}" in capsys.readouterr().err  # named on stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False)
    table["name"] = table["file"].str.split("/").str[-1]
    rows = table.set_index("name")
    assert rows.loc[name, "status"] == "error" and message in rows.loc[name, "error"]
    assert rows.loc["good.jpg", "status"] == "ok" and rows.loc["good.jpg", "class"] in {"normal", "polyp", "dyed"}
    assert rows.loc["good.jpg", ["p[normal]", "p[polyp]", "p[dyed]"]].astype(float).sum() == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize(
    "mode, convert, note",
    [
        ("L", lambda im: im.convert("L"), "converted from mode L to RGB"),
        ("CMYK", lambda im: im.convert("CMYK"), "converted from mode CMYK to RGB"),
        (
            "I;16",
            lambda im: Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257),
            "converted from mode I;16 to RGB",
        ),
        ("RGBA", lambda im: im.convert("RGBA"), "converted from mode RGBA to RGB"),
    ],
)
def test_predictor_converts_unusual_modes_and_says_so(exported, tmp_path, mode, convert, note):
    _, _, xmls = exported
    folder = tmp_path / "in"
    image = _good(folder)
    (folder / "good.jpg").unlink()
    converted = convert(image)
    assert converted.mode == mode
    converted.save(folder / ("frame.tif" if mode == "CMYK" else "frame.png"))
    assert (
        main(["predict", "--model", str(xmls["cls"]["FP32"]), "--input", str(folder), "--out", str(tmp_path / "out")])
        == 0
    )
    import pandas as pd

    row = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False).iloc[0]
    assert row["status"] == "ok" and row["note"] == note


def test_predictor_skips_files_that_are_not_images_by_name(exported, tmp_path, capsys):
    _, _, xmls = exported
    _good(tmp_path / "in")
    (tmp_path / "in" / "readme.txt").write_text("notes")
    (tmp_path / "in" / "more").mkdir()
    assert (
        main(
            [
                "predict",
                "--model",
                str(xmls["cls"]["FP32"]),
                "--input",
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "readme.txt: skipped" in err and "more: skipped (a folder" in err  # nothing skipped without a word


def test_predictor_segments_at_the_files_resolution(exported, tmp_path):
    _, _, xmls = exported
    (tmp_path / "in").mkdir()
    Image.fromarray(_frames(1)[0]).resize((70, 50)).save(tmp_path / "in" / "frame.png")
    assert (
        main(
            [
                "predict",
                "--model",
                str(xmls["seg"]["FP32"]),
                "--input",
                str(tmp_path / "in" / "frame.png"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    mask = np.asarray(Image.open(tmp_path / "out" / "mask" / "frame.png.png"))
    assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 255}
    assert Image.open(tmp_path / "out" / "overlay" / "frame.png.png").size == (70, 50)


def test_predictor_refuses_a_model_without_its_card_or_missing_input(exported, tmp_path, capsys):
    _, _, xmls = exported
    assert (
        main(["predict", "--model", str(tmp_path / "none.xml"), "--input", str(tmp_path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert (
        main(
            [
                "predict",
                "--model",
                str(xmls["cls"]["FP32"]),
                "--input",
                str(tmp_path / "absent"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "expected an OpenVINO IR .xml" in err and "absent: no such file or folder" in err


def test_int8_accuracy_control_keeps_the_fp32_decisions_on_validation(tmp_path):
    torch.manual_seed(0)
    model = TinyClassifier().eval()
    card = deploy.card("classification", ["a", "b", "c"], SIZE, "tiny", "test")
    frames = _frames(12, seed=2)
    with torch.no_grad():
        fp32 = model(torch.from_numpy(deploy.to_input(frames, card))).argmax(1).numpy()
    xml = deploy.export(model, card, tmp_path, "m", _frames(16), ("INT8",), validation=frames, max_drop=0.0)["INT8"]
    control = deploy.read_card(xml)["accuracy_control"]
    assert control["validation_frames"] == 12 and control["max_drop"] == 0.0
    kept = deploy.infer(deploy.compile_ir(xml, threads=1), frames, card).argmax(1)
    assert (kept == fp32).all()  # with max_drop 0 no validation decision may change


def test_agreement_counts_flips_that_accuracy_would_hide():
    truth = np.array([0, 1, 2, 0])
    a, b = np.array([0, 1, 0, 1]), np.array([1, 0, 2, 0])  # both 50% accurate, yet they agree on nothing
    assert np.mean(a == truth) == np.mean(b == truth) and deploy.agreement(a, b, "classification") == 0.0
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :2] = True
    assert deploy.agreement(masks, masks, "segmentation") == 1.0  # the empty frame agrees with itself


def test_int8_label_is_measured_from_the_graph(exported):
    """A model is called INT8 only when its convolutions/matmuls really take 8-bit weights and inputs."""
    import openvino as ov

    _, _, xmls = exported
    seg = deploy.read_card(xmls["seg"]["INT8"])["quantization"]
    assert seg["compute_ops"] == 2 and seg["int8_ops"] == 2 and seg["int8_weight_share"] == 1.0
    assert seg["label"] == "INT8" and deploy.precision_label(deploy.read_card(xmls["seg"]["INT8"])) == "INT8"
    fp32 = deploy.quantization(ov.Core().read_model(xmls["seg"]["FP32"]))  # what a rolled-back "INT8" IR looks like
    assert fp32["int8_ops"] == 0 and fp32["label"] == "not INT8 (no op quantized)"
    assert len(fp32["fp32_ops"]) == 2
    rolled_back = {"precision": "INT8", "quantization": fp32}
    assert deploy.precision_label(rolled_back) == "not INT8 (no op quantized)"
    assert deploy.precision_label({"precision": "FP16"}) == "FP16"
    table = deploy.quantization_table({"seg": xmls["seg"]})
    assert list(table["measured precision"]) == ["FP32", "FP16", "INT8"]
    control = {"validation_frames": 59, "max_drop": 0.01}
    strict = {"precision": "INT8", "task": "classification", "accuracy_control": control}
    assert deploy.rollback_rule(strict).endswith("of 59 validation frames: 0 disagreeing frames allowed")
    lenient = {**strict, "accuracy_control": {"validation_frames": 300, "max_drop": 0.01}}
    assert deploy.rollback_rule(lenient).endswith("3 disagreeing frames allowed")
    assert "mean Dice of at least 0.99" in deploy.rollback_rule({**strict, "task": "segmentation"})
    assert deploy.rollback_rule({"precision": "FP32"}) == ""


# Hostile files (issue 17): nothing silently wrong, nothing of the user's overwritten, no traceback.


def _png_header_only(width, height):
    """A tiny PNG that declares a huge image (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IEND", b"")
    )


def _predict(xml, folder, out, *extra):
    return main(["predict", "--model", str(xml), "--input", str(folder), "--out", str(out), *extra])


def test_predictor_names_outputs_apart_and_keeps_formulas_out_of_the_csv(exported, tmp_path):
    import pandas as pd

    from conftest import snapshot

    _, _, xmls = exported
    folder = tmp_path / "in"
    image = _good(folder)
    for name in ("a.b.jpg", "a_b.jpg", "=1+2.jpg"):
        image.save(folder / name)
    (folder / "bomb.png").write_bytes(_png_header_only(30000, 30000))
    before = snapshot(folder)
    assert _predict(xmls["seg"]["FP32"], folder, tmp_path / "out") == 1  # the bomb is one failed file, not a crash
    table = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False).set_index("file")
    assert table.loc["a.b.jpg", "mask_png"] != table.loc["a_b.jpg", "mask_png"]
    assert (tmp_path / "out" / table.loc["a.b.jpg", "mask_png"]).is_file()
    assert (tmp_path / "out" / table.loc["a_b.jpg", "mask_png"]).is_file()
    assert "'=1+2.jpg" in table.index  # shown as text by a spreadsheet, not computed
    assert table.loc["bomb.png", "status"] == "error" and "decompression bomb" in table.loc["bomb.png", "error"]
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "where, message",
    [
        ("input", "is inside the input folder"),
        ("inside", "is inside the input folder"),
        ("file", "is a file, not a folder"),
        ("earlier", "holds the results of an earlier run"),
    ],
)
def test_predictor_refuses_an_out_that_would_overwrite(exported, tmp_path, capsys, where, message):
    from conftest import snapshot

    _, _, xmls = exported
    folder = tmp_path / "in"
    _good(folder)
    (folder / "predictions.csv").write_text("the user's own file\n")
    out = {"input": folder, "inside": folder / "results", "file": tmp_path / "out.txt", "earlier": tmp_path / "done"}[
        where
    ]
    if where == "file":
        out.write_text("x")
    if where == "earlier":
        assert _predict(xmls["seg"]["FP32"], folder, out) == 0
    before = snapshot(folder)
    capsys.readouterr()
    assert _predict(xmls["seg"]["FP32"], folder, out) == 2
    assert message in capsys.readouterr().err
    assert snapshot(folder) == before


def test_overwrite_replaces_earlier_results_without_leaving_stale_masks(exported, tmp_path):
    _, _, xmls = exported
    folder = tmp_path / "in"
    _good(folder).save(folder / "second.jpg")
    out = tmp_path / "out"
    assert _predict(xmls["seg"]["FP32"], folder, out) == 0
    (folder / "second.jpg").unlink()
    assert _predict(xmls["seg"]["FP32"], folder, out, "--overwrite") == 0
    assert sorted(p.name for p in (out / "mask").iterdir()) == ["good.jpg.png"]


def test_predictor_applies_exif_orientation(exported, tmp_path):
    _, _, xmls = exported
    (tmp_path / "in").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 60x40, shown 40x60
    Image.fromarray(_frames(1)[0]).resize((60, 40)).save(tmp_path / "in" / "turned.jpg", exif=exif.tobytes())
    assert _predict(xmls["seg"]["FP32"], tmp_path / "in", tmp_path / "out") == 0
    assert Image.open(tmp_path / "out" / "mask" / "turned.jpg.png").size == (40, 60)


def _break_card(xml, **changes):
    import json

    card = json.loads(xml.with_suffix(".json").read_text())
    xml.with_suffix(".json").write_text(json.dumps(card | changes))


@pytest.mark.parametrize(
    "task, changes, message",
    [
        ("cls", {"input_size": 64}, "input_size 64 but the IR takes [1, 3, 32, 32]"),
        ("cls", {"classes": ["a", "b", "c", "d"]}, "4 classes but the IR outputs [1, 3]"),
        ("cls", {"std": [0, 0, 0]}, "std must be positive"),
        ("cls", {"task": "segmentation"}, "task segmentation but the IR outputs [1, 3]"),
        ("seg", {"mean": [0.5]}, "mean must be 3 numbers"),
        ("cls", "truncated bin", "OpenVINO cannot read this IR"),
    ],
)
def test_a_card_that_does_not_fit_its_ir_is_a_model_error(exported, tmp_path, capsys, task, changes, message):
    import shutil

    _, _, xmls = exported
    source = xmls[task]["FP32"]
    xml = tmp_path / source.name
    for suffix in (".xml", ".bin", ".json"):
        shutil.copy(source.with_suffix(suffix), xml.with_suffix(suffix))
    if changes == "truncated bin":
        data = xml.with_suffix(".bin").read_bytes()
        xml.with_suffix(".bin").write_bytes(data[: len(data) // 3])
    else:
        _break_card(xml, **changes)
    _good(tmp_path / "in")
    assert _predict(xml, tmp_path / "in", tmp_path / "out") == 2  # before any file is read
    err = capsys.readouterr().err
    assert message in err and str(xml.with_suffix(".json" if changes != "truncated bin" else ".xml")) in err
    assert not (tmp_path / "out").exists()


def test_story_table_reads_teacher_student_and_int8_student_side_by_side():
    steps = [("teacher", "PyTorch FP32", 44.0, 12.0, 0.75), ("student", "PyTorch FP32", 6.0, 6.0, 0.60)]
    steps += [("student", "OpenVINO INT8", 2.0, 1.0, 0.59)]
    bench = pd.DataFrame(
        [
            {"model": m, "runtime": r, "size_MB": s, "latency_median_ms": ms, "throughput_fps": 1e3 / ms}
            for m, r, s, ms, _ in steps
        ]
    )
    accuracy = pd.DataFrame([{"model": m, "runtime": r, "accuracy": f, "macro_f1": f} for m, r, _, _, f in steps])
    cards = {"teacher": {"architecture": "resnet18"}, "student": {"architecture": "resnet10t"}}
    story = deploy.story_table(accuracy, bench, cards, {("student", "OpenVINO INT8"): "INT8"})
    assert story["step"].tolist()[-1] == "student (resnet10t), OpenVINO, measured: INT8"
    assert story["smaller than teacher"].tolist() == [1.0, 44 / 6, 22.0]
    assert story["speed-up vs teacher"].tolist() == [1.0, 2.0, 12.0]
    assert story["macro_f1"].tolist() == [0.75, 0.60, 0.59]


def test_deployment_markdown_leaves_int8_columns_blank_for_float_irs():
    quantized = pd.DataFrame(
        [
            {"model": "m", "requested": "FP32", "int8 compute ops": "", "int8 weight share": None},
            {"model": "m", "requested": "INT8", "int8 compute ops": "15/15", "int8 weight share": 1.0},
        ]
    )
    checks = pd.DataFrame([{"model": "m", "command": "benchmark_app ...", "ratio": 1.0}])
    text = deploy.deployment_markdown("data", "versions", quantized, {}, pd.DataFrame([{"a": 1}]), checks, None)
    table = text.split("## What each IR really is")[1].split("## Accuracy")[0]
    assert "15/15" in table and "nan" not in table.lower()


def test_the_shell_command_names_the_paths_a_finished_run_has(tmp_path):
    """Notebook 06 writes into the run's staging copy; the command it prints must work after the run moved it."""
    stage = paths.in_run(tmp_path / "reports" / paths.STAGING / "cpu", course.DEPLOY)
    command = deploy.predict_command(stage / "ir" / "s.xml", stage / "inputs", stage / "cli")
    final = paths.in_run(tmp_path / "reports" / "cpu", course.DEPLOY)
    assert command.split()[5::2] == [str(final / "ir" / "s.xml"), str(final / "inputs"), str(final / "cli")]
    plain = deploy.predict_command(tmp_path / "a.xml", tmp_path / "in", tmp_path / "o")  # outside a run: as given
    assert (
        plain
        == f"python -m helpers predict --model {tmp_path / 'a.xml'} --input {tmp_path / 'in'} --out {tmp_path / 'o'}"
    )


def test_deployment_markdown_shows_a_change_that_rounds_to_zero_as_0_not_minus_0():
    # the cpu run's FP16 segmenter: IoU 1.6e-5 below FP32 printed as "-0", read as a loss
    accuracy = pd.DataFrame(
        [
            {"model": "segmenter", "runtime": "OpenVINO FP32", "iou": 0.56123, "iou change": 0.0, "frames": 35},
            {"model": "segmenter", "runtime": "OpenVINO FP16", "iou": 0.56121, "iou change": -1.636e-5, "frames": 35},
            {"model": "segmenter", "runtime": "OpenVINO INT8", "iou": 0.55, "iou change": -0.01123, "frames": 35},
        ]
    )
    checks = pd.DataFrame([{"model": "m", "command": "benchmark_app ...", "ratio": 1.0}])
    text = deploy.deployment_markdown(
        "data", "versions", pd.DataFrame([{"model": "m"}]), {"segmentation": (35, accuracy)}, accuracy, checks, None
    )
    rows = text.split("## Accuracy and parity per precision")[1].split("## Speed")[0].splitlines()
    changes = [row.split("|")[-3].strip() for row in rows if "OpenVINO" in row]
    assert changes == ["0", "0", "-0.0112"]
    assert [row.split("|")[-2].strip() for row in rows if "OpenVINO" in row] == ["35"] * 3  # counts stay integers


def test_the_unpinned_environment_drops_the_instruction_set_pins_and_keeps_the_threads(monkeypatch):
    for name, value in {**numerics.PINNED_ISA, "OMP_NUM_THREADS": "2"}.items():
        monkeypatch.setenv(name, value)
    assert numerics.pinned_isa()
    env = numerics.unpinned_environment()
    assert not set(numerics.PINNED_ISA) & set(env) and env["OMP_NUM_THREADS"] == "2"
    for name in numerics.PINNED_ISA:
        monkeypatch.delenv(name)
    assert not numerics.pinned_isa()


def test_benchmark_app_checks_add_the_unpinned_speed_only_for_a_pinned_run(exported, monkeypatch):
    """OpenVINO's CPU plugin reads ONEDNN_MAX_CPU_ISA: a pinned run measures AVX2 kernels, so it measures again
    without the pin in a child process, which must really run without it."""
    _, _, xmls = exported
    irs = {"cls": xmls["cls"]}
    bench = pd.DataFrame(
        [{"model": "cls", "runtime": f"OpenVINO {p}", "latency_median_ms": 1.0} for p in ("FP32", "INT8")]
    )
    seen: list[dict | None] = []
    real_run = deploy.subprocess.run

    def run(*args, **kwargs):
        seen.append(kwargs.get("env"))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(deploy.subprocess, "run", run)
    for name in numerics.PINNED_ISA:
        monkeypatch.delenv(name, raising=False)
    plain = deploy.benchmark_app_checks(bench, irs, ["cls"], threads=1, seconds=1)
    assert deploy.UNPINNED not in plain and len(seen) == 2  # not pinned: one run per IR
    assert "not pinned" in deploy.pin_cost_line(plain, [])
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    seen.clear()
    pinned = deploy.benchmark_app_checks(bench, irs, ["cls"], threads=1, seconds=1)
    assert len(seen) == 4 and seen[0] is None and "ONEDNN_MAX_CPU_ISA" not in seen[1]  # pinned, then unpinned
    assert (pinned[deploy.UNPINNED] > 0).all()
    assert pinned["pinned / own"].tolist() == pytest.approx(
        (pinned["benchmark_app_median_ms"] / pinned[deploy.UNPINNED]).tolist()
    )
    text = deploy.deployment_markdown("d", "v", pd.DataFrame([{"m": 1}]), {}, bench, pinned, None)
    assert "CPU's own instructions" in text and "without the run's instruction-set pins" in text


def test_the_pin_cost_line_says_faster_the_same_or_mixed_from_the_measured_ratios():
    def checks(*ratios: float) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "model": "segmenter",
                    "precision": p,
                    "benchmark_app_median_ms": r,
                    deploy.UNPINNED: 1.0,
                    "pinned / own": r,
                }
                for p, r in zip(("FP32", "INT8"), ratios)
            ]
        )

    faster = deploy.pin_cost_line(checks(1.6, 2.2), ["avx2", "avx512_vnni", "avx512bw", "avx512f"])
    assert "1.6-2.2x faster" in faster and "avx512_vnni, avx512f)" in faster and "INT8 2.20 -> 1.00 ms" in faster
    same = deploy.pin_cost_line(checks(0.97, 1.04), ["avx2", "fma"])
    assert "about as fast" in same and "nothing beyond AVX2" in same
    assert "some IRs faster and some not (pinned / own 0.95-1.50)" in deploy.pin_cost_line(checks(0.95, 1.5), [])


def test_the_code_path_caption_says_whether_speeds_are_on_the_pinned_kernels(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert numerics.code_path().startswith("pinned code path (AVX2")
    for name in numerics.PINNED_ISA:
        monkeypatch.delenv(name, raising=False)
    assert numerics.code_path() == "the CPU's own instructions"
