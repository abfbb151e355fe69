"""Which few-label budget leaves a teacher something to teach? Notebook 03's grid at other budgets, validation only.

    python scripts/label_budget.py [--profile cpu] [--reports-root DIR] [--budgets 0.1 0.25] [--epochs N]

After a run (`./run_all.sh`, which writes notebook 02's encoder), trains at
each budget what notebook 03 trains (same teacher, students, temperatures,
seeds, epochs and pinned numerics, `helpers.numerics`): the teacher fine-tuned
on that budget's labels, and every student from scratch, with KD and with KD
plus the transfer set. It prints validation macro F1 only: the test split is
never loaded, so the budget the course uses can be chosen here without
looking at the numbers it reports. On the cpu profile the two default
budgets take about 10.5 minutes on 2 cores (the teachers side by side).
"""

from __future__ import annotations

import sys

from helpers import diagnosis


def main(argv: list[str] | None = None) -> int:
    parser = diagnosis.parser(__doc__)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.1, 0.25], help="shares of the train labels")
    parser.add_argument("--epochs", type=int, help="teacher and student epochs (default: the profile's)")
    args = parser.parse_args(argv)
    if (run := diagnosis.start(args)) is None:
        return 2
    import pandas as pd

    from helpers import classify, data, ssl, tables

    profile, params, ssl_dir, name, report, splits = run
    classes, size = report["classes"], profile.image_size
    scored = {**splits, "test": splits["val"]}  # the grid also scores a "test" split: here it is validation again
    shared = dict(batch_size=profile.batch_size, image_size=size, class_weighted=params["class_weighted"])
    teachers = classify.train_teachers(
        name,
        ssl_dir / "encoder.pt",
        args.budgets,
        splits,
        len(classes),
        epochs=args.epochs or params["teacher_epochs"],
        lr=params["teacher_lr"],
        seed=profile.seed,
        **shared,
    )
    transfer, _ = ssl.unlabeled_pool(args.profile, args.reports_root, size)
    runs, _ = classify.student_grid(
        params["students"],
        args.budgets,
        params["temperatures"],
        params["student_seeds"],
        scored,
        classes,
        {b: model for b, (model, _) in teachers.items()},
        transfer,
        epochs=args.epochs or params["student_epochs"],
        lr=params["student_lr"],
        alpha=params["alpha"],
        label_seed=profile.seed,
        **shared,
    )
    methods = pd.CategoricalDtype(classify.METHODS, ordered=True)  # scratch, KD, KD + transfer, in that order
    runs = runs[runs["chosen"]].astype({"method": methods})
    keys = ["budget", "labels", "student", "method"]
    table = runs.groupby(keys, as_index=False, observed=True)["val_macro_f1"].agg(["mean", "std"])
    teacher_rows = [
        {"budget": b, "labels": int(runs.loc[runs["budget"] == b, "labels"].iloc[0]), "student": f"teacher ({name})"}
        | {"method": "fine-tuned SSL encoder", "mean": history["val_macro_f1"].max(), "std": float("nan")}
        for b, (_, history) in teachers.items()
    ]
    table = pd.concat([pd.DataFrame(teacher_rows), table.astype({"method": str})], ignore_index=True)
    table = table.sort_values("budget", kind="stable")  # each budget's teacher first
    print(
        data.provenance(
            report, f"train {len(splits['train'][1])} / val {len(splits['val'][1])} frames; scored on validation only"
        )
    )
    print(f"\nvalidation macro F1 (students: mean ± std over seeds {params['student_seeds']}; teacher: best epoch)\n")
    print(tables.markdown(table, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
