"""Does notebook 03's teacher owe its score to notebook 02's pretraining? A diagnosis on the validation split.

    python scripts/teacher_ablation.py [--profile cpu] [--reports-root DIR] [--epochs N] [--lrs 1e-3 ...]

After a run (`./run_all.sh`), trains each label budget's teacher as notebook 03
does (same architecture, epochs, batch size, class weights, seed and pinned
numerics, `helpers.numerics`), once from notebook 02's SimCLR encoder and once
from random initialisation (at each learning rate of `--lrs`; default the
profile's), and prints validation macro F1: at the best epoch (the one a
teacher keeps) and averaged over the last ten epochs. The SimCLR runs the
course already made are read from 03_kd/teacher_histories.csv, not trained
again, when the recipe is the run's (`--retrain` trains them too: under the
pin they come out identical). The test split is never read. On the cpu
profile (2 runs of 100 epochs, side by side) it takes about 6 minutes.
"""

from __future__ import annotations

import sys

from helpers import diagnosis


def main(argv: list[str] | None = None) -> int:
    parser = diagnosis.parser(__doc__)
    parser.add_argument("--epochs", type=int, help="teacher epochs (default: the profile's teacher_epochs)")
    parser.add_argument("--lrs", type=float, nargs="+", help="learning rates (default: the profile's)")
    parser.add_argument("--retrain", action="store_true", help="train the SimCLR runs too, not read the run's")
    args = parser.parse_args(argv)
    if (run := diagnosis.start(args)) is None:
        return 2
    from helpers import classify, course, data, paths, tables

    profile, params, ssl_dir, name, report, splits = run
    classes, size = report["classes"], profile.image_size
    epochs = args.epochs or params["teacher_epochs"]
    recipe = dict(model=name, epochs=epochs, batch_size=profile.batch_size, image_size=size, seed=profile.seed)
    kd_dir = paths.stage_dir(args.profile, course.KD, args.reports_root, create=False)
    known, why_not = classify.saved_teacher_histories(kd_dir, **recipe, class_weighted=params["class_weighted"])
    if args.retrain or why_not:
        print(f"training every run: {'--retrain' if args.retrain else why_not}", file=sys.stderr)
        known = {}
    table = classify.teacher_ablation(
        name,
        ssl_dir / "encoder.pt",
        params["label_budgets"],
        args.lrs or [params["teacher_lr"]],
        splits,
        len(classes),
        epochs=epochs,
        batch_size=profile.batch_size,
        image_size=size,
        seed=profile.seed,
        class_weighted=params["class_weighted"],
        known=known,
    )
    split_note = f"train {len(splits['train'][1])} / val {len(splits['val'][1])} frames; scored on validation only"
    print(data.provenance(report, split_note))
    print(f"\n{name} teachers, {epochs} epochs, validation macro F1:\n")
    print(tables.markdown(table, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
