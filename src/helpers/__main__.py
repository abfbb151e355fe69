"""Command line: ``python -m helpers run|data ...`` (``run_all.sh`` calls ``run``)."""

from __future__ import annotations

import argparse
import sys

from .profiles import PROFILE_NAMES


def _run(args: argparse.Namespace) -> int:
    from .runner import run_course

    return run_course(profile=args.profile, data_root=args.data_root, only=args.only, reports_root=args.reports_root,
                      skip_bad=args.skip_bad)


def _data(args: argparse.Namespace) -> int:
    from .data import DataError, prepare

    try:
        prepared = prepare(args.profile, data_root=args.data_root, reports_root=args.reports_root,
                           skip_bad=args.skip_bad)
    except (DataError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    r = prepared.report
    print(f"{r['description']}: {r['counts']}\nsplits: {r['split_source']}\nfingerprint: {r['fingerprint']}")
    for b in r["bad_files"]:
        print(f"left out: {b['path']}: {b['problem']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers", description="Colonoscopy deep-learning course tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--profile", choices=PROFILE_NAMES, default="cpu",
                       help="smoke: tiny, for tests; cpu (default): the course on a laptop; full: real data on a GPU")
        p.add_argument("--data-root", default="", metavar="PATH",
                       help="real data: a Kvasir-SEG folder (images/, masks/), Kvasir v2 class folders, a folder of "
                            "images, or a folder holding kvasir-seg/ and kvasir-v2/. Default: embedded synthetic data")
        p.add_argument("--skip-bad", action="store_true",
                       help="leave out unreadable or inconsistent files (listed in the data report) instead of stopping")
        p.add_argument("--reports-root", default="", metavar="DIR", help="write reports under DIR/<profile>/ (default: reports/)")

    run = sub.add_parser("run", help="execute the notebooks with Papermill and write reports/<profile>/",
                         description="Execute the course notebooks in order with Papermill; executed copies, HTML and "
                                     "manifest.json go to reports/<profile>/.")
    common(run)
    run.add_argument("--only", action="append", metavar="NAME",
                     help="run only this notebook (name or number prefix, e.g. 01 or 01_eda); repeatable")
    run.set_defaults(func=_run)
    data = sub.add_parser("data", help="validate and split the data only (what notebook 00 does)")
    common(data)
    data.set_defaults(func=_data)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
