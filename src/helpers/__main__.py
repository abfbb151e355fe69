"""Command line: ``python -m helpers run|data|predict|verify|make-reference ...`` (``run_all.sh`` calls ``run``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .profiles import PROFILE_NAMES


def _run(args: argparse.Namespace) -> int:
    from .runner import run_course

    return run_course(
        profile=args.profile,
        data_root=args.data_root,
        only=args.only,
        reports_root=args.reports_root,
        skip_bad=args.skip_bad,
        external=args.external or [],
        force=args.force,
        numerics_mode=args.numerics,
    )


def _data(args: argparse.Namespace) -> int:
    from .data import DataError, prepare

    try:
        prepared = prepare(
            args.profile, data_root=args.data_root, reports_root=args.reports_root, skip_bad=args.skip_bad
        )
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a --reports-root that is a file or read-only
        print(f"error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    r = prepared.report
    print(f"{r['description']}: {r['counts']}\nsplits: {r['split_source']}\nfingerprint: {r['fingerprint']}")
    for b in r["bad_files"]:
        print(f"left out: {b['path']}: {b['problem']}", file=sys.stderr)
    for w in r["warnings"]:
        print(f"warning: {w['path']}: {w['problem']}", file=sys.stderr)
    for n in r["notes"]:
        print(f"note: {n['path']}: {n['note']}", file=sys.stderr)
    print(
        f"masks: {r['masks']['encodings'] or 'none'}"
        + (f"; colour classes {r['masks']['colour_classes']}" if r["masks"]["colour_classes"] else "")
    )
    return 0


PREDICTION_OUTPUTS = ("predictions.csv", "mask", "overlay")  # what the predictor writes into --out


def _out_problem(out: Path, source: Path, overwrite: bool) -> str:
    """Why `--out` cannot be written ("" when it can): never among the inputs, never over earlier results unasked."""
    if out.exists() and not out.is_dir():
        return "is a file, not a folder"
    folder = source if source.is_dir() else source.parent
    if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
        return (
            f"is inside the input folder {folder}: choose an output folder outside it "
            "(your files are never written over)"
        )
    earlier = [name for name in PREDICTION_OUTPUTS if (out / name).exists()]
    if earlier and not overwrite:
        return (
            f"holds the results of an earlier run ({', '.join(earlier)}): choose another folder, or add --overwrite to "
            "replace them"
        )
    return ""


def _predict(args: argparse.Namespace) -> int:
    """Exit codes: 0 every file predicted, 1 some files failed (each named), 2 usage or model error."""
    import shutil

    import pandas as pd

    from .artifacts import write_csv
    from .data.images import IMAGE_EXTENSIONS
    from .runtime import check_card, predict_files

    model, source, out = Path(args.model), Path(args.input), Path(args.out)
    try:
        if model.suffix != ".xml" or not model.is_file() or not model.with_suffix(".bin").is_file():
            raise ValueError(f"{model}: expected an OpenVINO IR .xml with its .bin next to it")
        check_card(model)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if source.is_dir():
        entries = sorted(p for p in source.iterdir() if not p.name.startswith("."))
        for p in entries:
            if p.is_dir():
                print(f"note: {p}: skipped (a folder; only the files directly in --input are read)", file=sys.stderr)
        files = [p for p in entries if p.is_file()]
        skipped = [p for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
        files = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        for p in skipped:
            print(f"note: {p}: skipped (extension {p.suffix or 'none'} is not an image type)", file=sys.stderr)
    elif source.is_file():
        files = [source]
    else:
        print(f"error: {source}: no such file or folder", file=sys.stderr)
        return 2
    if not files:
        print(f"error: {source}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})", file=sys.stderr)
        return 2
    if problem := _out_problem(out, source, args.overwrite):
        print(f"error: --out {out}: {problem}", file=sys.stderr)
        return 2
    try:
        for name in PREDICTION_OUTPUTS:  # with --overwrite: our own earlier results only, so none is left stale
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        rows, failures = predict_files(
            model, files, out, args.threads, root=source if source.is_dir() else source.parent
        )
        write_csv(out / "predictions.csv", pd.DataFrame(rows))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(rows) - failures} of {len(rows)} file(s) predicted; results in {out / 'predictions.csv'}")
    if failures:
        print(f"{failures} file(s) failed: see the 'error' column", file=sys.stderr)
    return 1 if failures else 0


def _reference_path(args: argparse.Namespace) -> Path:
    from . import paths

    return Path(args.reference) if args.reference else paths.reference_file(args.profile)


def _verify(args: argparse.Namespace) -> int:
    import pandas as pd

    from . import paths
    from .artifacts import read_json
    from .report import code_paths, verdict_line, verify

    run = Path(args.run_dir) if args.run_dir else paths.run_dir(args.profile)
    reference = _reference_path(args)
    for path, what in ((reference, "reference"), (run, "run folder")):
        if not path.exists():
            print(f"error: {path}: no such {what}", file=sys.stderr)
            return 2
    ref = read_json(reference)
    table = verify(run, ref)
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_colwidth", 70):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    manifest = read_json(run / "manifest.json") if (run / "manifest.json").is_file() else {}
    print(f"\nrun {run} vs reference {reference} (profile {ref['profile']}; tolerance rule: {ref['tolerance_rule']})")
    print(code_paths(manifest.get("numerics"), (ref.get("from_run") or {}).get("numerics")))
    print(verdict_line(table))
    return 1 if table["status"].isin(("FAIL", "MISSING")).any() else 0


def _make_reference(args: argparse.Namespace) -> int:
    from . import paths
    from .artifacts import write_json
    from .report import make_reference

    run = Path(args.run_dir) if args.run_dir else paths.run_dir(args.profile)
    try:
        reference = make_reference(run, args.profile)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    target = _reference_path(args)
    write_json(target, reference)
    print(f"{len(reference['metrics'])} metrics from {run} written to {target}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Exit code 2 for a model that cannot be served; otherwise serves until interrupted."""
    from .serve import check_models, run

    workers = args.workers
    xmls = [Path(m) for m in args.model]
    try:
        check_models(xmls)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"serving {', '.join(x.stem for x in xmls)} on http://{args.host}:{args.port}/ (API docs: /docs), "
        f"{workers} worker process{'es' if workers > 1 else ''}",
        file=sys.stderr,
    )
    run(xmls, args.host, args.port, args.threads, workers)
    return 0


def _worker_count(text: str) -> int:
    from .serve import worker_count  # imported when parsed: other commands need no FastAPI

    return worker_count(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Colonoscopy deep-learning course tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--profile",
            choices=PROFILE_NAMES,
            default="cpu",
            help="smoke: tiny, for tests; cpu (default): the course on a laptop; full: real data on a GPU",
        )
        p.add_argument(
            "--data-root",
            default="",
            metavar="PATH",
            help="real data: a Kvasir-SEG folder (images/, masks/), Kvasir v2 class folders, a folder of "
            "images, or a folder holding kvasir-seg/ and kvasir-v2/. Default: embedded synthetic data",
        )
        p.add_argument(
            "--skip-bad",
            action="store_true",
            help="leave out unreadable or inconsistent files (listed in the data report) instead of stopping",
        )
        p.add_argument(
            "--reports-root", default="", metavar="DIR", help="write reports under DIR/<profile>/ (default: reports/)"
        )

    run = sub.add_parser(
        "run",
        help="execute the out-of-date notebooks with Papermill and write reports/<profile>/",
        description="Execute the course notebooks in order with Papermill; executed copies, HTML and "
        "manifest.json go to reports/<profile>/. A notebook whose inputs (notebook file, "
        "the helpers modules it imports, parameters, library versions, data folder, "
        "outputs of the notebooks it reads) are unchanged since its last successful run "
        "is reported as up to date and not executed. The run works in "
        "reports/.staging/<profile>/ and replaces reports/<profile>/ only when every "
        "notebook it ran succeeded.",
    )
    common(run)
    run.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="consider only this notebook (name or number prefix, e.g. 01 or 01_eda); repeatable",
    )
    run.add_argument(
        "--external",
        action="append",
        metavar="DIR",
        help="a Kvasir-SEG-layout folder (images/, masks/) from another centre, named by its folder: notebooks 04 "
        "and 05 test their chosen models and the ensemble on it; never trained or chosen on, never modified; "
        "repeatable",
    )
    run.add_argument("--force", action="store_true", help="run the selected notebooks even when they are up to date")
    run.add_argument(
        "--numerics",
        choices=("pinned", "native"),
        default="pinned",
        help="pinned (default): one CPU code path (oneDNN/MKL at AVX2, the profile's thread count), so "
        "results match the reference on any x86-64 CPU; native: every library picks its fastest "
        "path (results then differ by CPU, within verify's tolerances)",
    )
    run.set_defaults(func=_run)
    data = sub.add_parser("data", help="validate and split the data only (what notebook 00 does)")
    common(data)
    data.set_defaults(func=_data)
    predict = sub.add_parser(
        "predict",
        help="run a deployed OpenVINO model (notebook 06) on image files",
        description="Classify or segment images with an OpenVINO IR written by notebook 06. "
        "Writes predictions.csv (and mask/overlay PNGs for segmentation) to --out. "
        "Bad files get a per-file error. Exit codes: 0 all predicted, 1 some files "
        "failed, 2 usage or model error (e.g. a card that does not fit its IR).",
    )
    predict.add_argument("--model", required=True, metavar="PATH.xml", help="OpenVINO IR with its .bin and .json card")
    predict.add_argument("--input", required=True, metavar="FILE_OR_FOLDER", help="an image, or a folder of images")
    predict.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    predict.add_argument("--threads", type=int, default=None, help="CPU threads for inference (default: OpenVINO's)")
    predict.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the predictions.csv, mask/ and overlay/ of an earlier run in --out",
    )
    predict.set_defaults(func=_predict)
    serve = sub.add_parser(
        "serve",
        help="serve deployed OpenVINO models (notebook 06) over HTTP: an API and an upload page",
        description="Serve OpenVINO IRs written by notebook 06 with FastAPI + uvicorn: GET /health, GET /v1/models, "
        "POST /v1/predict (multipart field 'file' or JSON image_base64), the API docs at /docs and an upload page "
        "at /. Bad input gets a JSON error with a stable code. Exit code 2: a model that cannot be served.",
    )
    serve.add_argument(
        "--model", required=True, action="append", metavar="PATH.xml", help="an IR with its card; repeatable"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for inference per process (default: OpenVINO's with one process, else each its share)",
    )
    serve.add_argument(
        "--workers",
        type=_worker_count,
        default="auto",
        help="server processes sharing the port, each with its own copy of the models: one Python process is "
        "limited by its GIL (default auto: one per 4 CPUs, at least one)",
    )
    serve.set_defaults(func=_serve)
    for name, func, text in (
        (
            "verify",
            _verify,
            "compare a run's headline metrics with the committed reference; exit 1 on any FAIL or MISSING metric",
        ),
        (
            "make-reference",
            _make_reference,
            "write a run's headline metrics and tolerances as the reference (maintainers)",
        ),
    ):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("--profile", choices=PROFILE_NAMES, default="cpu")
        cmd.add_argument("--run-dir", default="", metavar="DIR", help="the run folder (default: reports/<profile>/)")
        cmd.add_argument(
            "--reference",
            default="",
            metavar="FILE",
            help="reference file (default: reports/reference/<profile>/metrics.json)",
        )
        cmd.set_defaults(func=func)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
