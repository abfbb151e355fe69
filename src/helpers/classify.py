"""Frame classifiers (normal / polyp / dyed-lifted polyp): build, train (with or without a teacher), score.

Notebook 03 trains the teacher and the students with the same `fit`, so the
only difference between "scratch" and "distilled" is the loss. Model selection
uses the validation split only; the test split is scored once at the end.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from .artifacts import read_json, write_json
from .distill import kd_loss
from .parallel import run_all
from .progress import progress
from .training import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ArrayDataset,
    device,
    extract_features,
    load_encoder,
    load_weights,
    save_weights,
    seed_everything,
)


def build(name: str, n_classes: int, encoder_weights: Path | None = None) -> nn.Module:
    """A timm classifier; with `encoder_weights` (notebook 02's encoder.pt) only its head starts random.

    Refuses a checkpoint that does not fit the architecture, instead of
    silently training from scratch.
    """
    model = timm.create_model(name, pretrained=False, num_classes=n_classes)
    if encoder_weights is not None:
        load_encoder(model, encoder_weights, name, allowed_missing=model.pretrained_cfg.get("classifier", "fc") + ".")
    return model


def load_saved(kd_dir: Path, name: str | None = None) -> nn.Module:
    """A classifier notebook 03 saved: the teacher (`name` None) or a student checkpoint of students/index.json.

    The architecture comes from plain JSON; the file holds weights only.
    """
    kd_dir = Path(kd_dir)
    index = read_json(kd_dir / "students" / "index.json")
    if name is None:
        arch, weights = read_json(kd_dir / "teacher.json")["model"], kd_dir / "teacher.pt"
    else:
        arch, weights = index["checkpoints"][name]["model"], kd_dir / "students" / f"{name}.pt"
    return load_weights(build(arch, len(index["classes"])), weights).eval()


def teacher_for(ssl_dir: Path, students: list[str], budgets: list[float]) -> str:
    """The teacher's architecture: notebook 02's encoder. Refuses a set-up where it could not teach."""
    if not (Path(ssl_dir) / "encoder.pt").is_file():
        raise FileNotFoundError(
            f"{Path(ssl_dir) / 'encoder.pt'} is missing: run notebook 02 first (./run_all.sh --only 02)"
        )
    name = read_json(Path(ssl_dir) / "encoder.json")["encoder"]
    if 1.0 not in budgets:
        raise ValueError(
            f"label_budgets {budgets} must include 1.0: the all-label teacher is the one saved and deployed"
        )
    if name in students:
        raise ValueError(f"the teacher {name} is also a student: distillation must compress (students: {students})")
    return name


TEACHER_HISTORIES = "teacher_histories.csv"


def save_teacher(kd_dir: Path, teachers: dict[float, tuple[nn.Module, pd.DataFrame]], keep: float, **facts) -> None:
    """The teacher trained on `keep` of the labels as teacher.pt (weights only) and teacher.json (`facts`, its
    best epoch): what `load_saved` builds it from. Every budget's fine-tuning curve goes to teacher_histories.csv,
    so that scripts/teacher_ablation.py can compare against these teachers without training them again."""
    teacher, history = teachers[keep]
    save_weights(teacher, Path(kd_dir) / "teacher.pt")
    best_epoch = int(history.loc[history["val_macro_f1"].idxmax(), "epoch"])
    write_json(Path(kd_dir) / "teacher.json", {**facts, "budget": keep, "best_epoch": best_epoch})
    curves = pd.concat({b: h for b, (_, h) in teachers.items()}, names=["budget", None]).reset_index(level=0)
    curves.to_csv(Path(kd_dir) / TEACHER_HISTORIES, index=False)


def saved_teacher_histories(kd_dir: Path, **recipe) -> tuple[dict[tuple[float, float], pd.DataFrame], str]:
    """The run's teacher curves, keyed by (budget, lr), if its teachers were trained with `recipe` (the facts in
    teacher.json); otherwise nothing, and the reason."""
    facts_file, curves_file = Path(kd_dir) / "teacher.json", Path(kd_dir) / TEACHER_HISTORIES
    if not facts_file.is_file() or not curves_file.is_file():
        return {}, f"{curves_file} is missing (a run from before it was written)"
    facts = read_json(facts_file)
    differ = [k for k, v in recipe.items() if facts.get(k) != v]
    if differ:
        return {}, "the run's teachers had another " + ", ".join(
            f"{k} ({facts.get(k)!r}, not {recipe[k]!r})" for k in differ
        )
    curves = pd.read_csv(curves_file)
    return {(b, facts["lr"]): h.drop(columns="budget").reset_index(drop=True) for b, h in curves.groupby("budget")}, ""


def checkpoint_name(student: str, method: str, temperature: float | None) -> str:
    """e.g. resnet10t_scratch, resnet10t_kd_T4, resnet10t_kd_transfer_T4."""
    slug = method.lower().replace(" + ", "_")
    return f"{student}_{slug}" + ("" if method == "scratch" else f"_T{temperature:g}")


def save_students(
    kd_dir: Path,
    models: dict[str, nn.Module],
    entries: dict[str, dict],
    classes: list[str],
    image_size: int,
    best: str,
) -> Path:
    """Write each student's weights and students/index.json, the file `load_saved`, notebooks 05/06 and the
    report read: per checkpoint its architecture, method, temperature, label budget and seed; `best` is the one
    chosen on validation for deployment."""
    folder = Path(kd_dir) / "students"
    for name, model in models.items():
        save_weights(model, folder / f"{name}.pt")
    index = {"classes": classes, "image_size": image_size, "checkpoints": entries, "best": best}
    return write_json(folder / "index.json", index)


def train_transform(image_size: int) -> v2.Compose:
    """Mild augmentation: crops keep most of the frame (a polyp must stay in it), no hue change (dye is blue)."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply([v2.ColorJitter(0.2, 0.2, 0.1, 0.0)], p=0.5),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """'Balanced' weights n / (k * count): a rare class's errors cost as much in total as a common one's."""
    return torch.tensor(compute_class_weight("balanced", classes=np.arange(n_classes), y=labels), dtype=torch.float32)


def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    logits = extract_features(model, images, batch_size=batch_size, desc="predict")
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def label_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified `fraction` of the frames, at least two per class.

    The few-label budget: the same subset for every model, method and
    training seed, so the spread over seeds is the training's, not the draw's.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label budget must be in (0, 1], got {fraction}")
    if fraction == 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        keep.extend(rng.choice(members, min(len(members), max(2, round(fraction * len(members)))), replace=False))
    return np.sort(np.array(keep, dtype=int))


def _endless(loader: DataLoader):
    """Batches of `loader` for ever, reshuffled at every pass: steps, not passes, set the budget."""
    while True:
        yield from loader


def fit(
    model: nn.Module,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    val_images: np.ndarray,
    val_labels: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    image_size: int,
    teacher: nn.Module | None = None,
    temperature: float = 4.0,
    alpha: float = 0.7,
    weights: torch.Tensor | None = None,
    steps_per_epoch: int | None = None,
    transfer_images: np.ndarray | None = None,
    desc: str = "train",
) -> pd.DataFrame:
    """Train with AdamW + cosine decay; keep the epoch with the best validation macro F1.

    Without a teacher the loss is (weighted) cross-entropy; with one it is
    `distill.kd_loss` on the teacher's logits for the same augmented batch.
    `steps_per_epoch` fixes the budget in optimizer steps (default: one pass
    over the labelled frames), so a few-label run trains as long as an
    all-label one. With `transfer_images` every step adds a batch of those
    unlabeled frames, which only the teacher's soft targets supervise.
    Returns one row per epoch (loss, validation macro F1, whether it was kept).
    """
    if transfer_images is not None and teacher is None:
        raise ValueError("a transfer set needs a teacher: its frames have no labels")
    dev, layout = device(), torch.channels_last  # NHWC: a ResNet-10t step 1.1x, MobileNetV3 1.6x faster on CPU
    model.to(dev, memory_format=layout)
    if teacher is not None:
        teacher.to(dev, memory_format=layout).eval()
    w = weights.to(dev) if weights is not None else None
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        ArrayDataset(train_images, train_labels, train_transform(image_size)),
        batch_size=min(batch_size, len(train_images)),
        shuffle=True,
        drop_last=len(train_images) > batch_size,
        generator=generator,
    )
    steps = steps_per_epoch or len(loader)
    batches = _endless(loader)
    transfer = None
    if transfer_images is not None:
        transfer = _endless(
            DataLoader(
                ArrayDataset(transfer_images, None, train_transform(image_size)),
                batch_size=batch_size,
                shuffle=True,
                drop_last=len(transfer_images) > batch_size,
                generator=generator,
            )
        )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps))
    history, best_f1, best_state = [], -1.0, None
    bar = progress(range(1, epochs + 1), desc=desc)
    for epoch in bar:
        model.train()
        losses = []
        for _ in range(steps):
            x, y = next(batches)
            if transfer is not None:
                x = torch.cat([x, next(transfer)])
            x, y = x.to(dev, memory_format=layout), y.to(dev)
            logits = model(x)
            if teacher is None:
                loss = F.cross_entropy(logits, y, weight=w)
            else:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                loss = kd_loss(logits, teacher_logits, y, temperature=temperature, alpha=alpha, class_weights=w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        val_f1 = f1_score(val_labels, predict_proba(model, val_images).argmax(1), average="macro")
        kept = val_f1 > best_f1
        if kept:
            best_f1, best_state = val_f1, copy.deepcopy(model.state_dict())
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_macro_f1": float(val_f1), "kept": kept})
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", val_f1=f"{val_f1:.3f}", refresh=False)
    model.load_state_dict(best_state)
    model.eval()
    return pd.DataFrame(history)


def metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str], pred: np.ndarray | None = None
) -> dict[str, float]:
    """Accuracy, macro F1, macro one-vs-rest ROC-AUC and per-class precision/recall/F1.

    `pred` defaults to the most probable class; a voting ensemble passes its
    own (its tie rule). ROC-AUC is NaN when a class is missing from `y_true`
    (it is undefined then).
    """
    k = len(classes)
    pred = proba.argmax(1) if pred is None else pred
    out = {
        "accuracy": accuracy_score(y_true, pred),
        "macro_f1": f1_score(y_true, pred, labels=range(k), average="macro", zero_division=0),
    }
    if len(np.unique(y_true)) < k:
        out["roc_auc"] = float("nan")
    elif k == 2:
        out["roc_auc"] = roc_auc_score(y_true, proba[:, 1])
    else:
        out["roc_auc"] = roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=range(k))
    p, r, f, _ = precision_recall_fscore_support(y_true, pred, labels=range(k), zero_division=0)
    for i, c in enumerate(classes):
        out[f"precision[{c}]"], out[f"recall[{c}]"], out[f"f1[{c}]"] = p[i], r[i], f[i]
    return {key: float(v) for key, v in out.items()}


def per_class_table(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class: what a '~100% accuracy' claim must come with."""
    p, r, f, s = precision_recall_fscore_support(y_true, proba.argmax(1), labels=range(len(classes)), zero_division=0)
    return pd.DataFrame({"class": classes, "precision": p, "recall": r, "f1": f, "support": s})


def plot_confusions(results: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str]):
    """Confusion matrices (counts, rows = true class) side by side, one per model."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, axes = plt.subplots(1, len(results), figsize=(4.3 * len(results), 4.0), squeeze=False)
    short = [c.replace("dyed-lifted-polyps", "dyed-lifted").replace("normal-cecum", "normal") for c in classes]
    for ax, (name, (y_true, pred)) in zip(axes[0], results.items()):
        cm = confusion_matrix(y_true, pred, labels=range(len(classes)))
        ConfusionMatrixDisplay(cm, display_labels=short).plot(ax=ax, colorbar=False, cmap="Blues")
        ax.set_title(name)
        ax.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    return fig


METHODS = ("scratch", "KD", "KD + transfer")


def _fit_on_budget(
    model: nn.Module,
    splits: dict,
    budget: float,
    label_seed: int,
    n_classes: int,
    class_weighted: bool,
    batch_size: int,
    **kwargs,
) -> tuple[pd.DataFrame, int]:
    """`fit` on a label budget's frames of the train split; returns the history and how many frames that was.

    Teachers and students alike train one pass of the *whole* train split's
    worth of steps per epoch, whatever the budget, so a few-label run trains as
    long as an all-label one; (balanced) class weights come from the labelled frames.
    """
    (x_tr, y_tr), (x_va, y_va) = splits["train"], splits["val"]
    idx = label_subset(y_tr, budget, label_seed)
    history = fit(
        model,
        x_tr[idx],
        y_tr[idx],
        x_va,
        y_va,
        batch_size=batch_size,
        weights=class_weights(y_tr[idx], n_classes) if class_weighted else None,
        steps_per_epoch=int(np.ceil(len(y_tr) / batch_size)),
        **kwargs,
    )
    return history, len(idx)


def _train_teacher(
    budget: float,
    *,
    name: str,
    encoder_weights: Path | None,
    splits: dict,
    n_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    image_size: int,
    seed: int,
    class_weighted: bool,
) -> tuple[pd.DataFrame, dict]:
    """One teacher run (a job of `helpers.parallel`): its history and weights."""
    seed_everything(seed)
    teacher = build(name, n_classes, encoder_weights=encoder_weights)
    history, _ = _fit_on_budget(
        teacher,
        splits,
        budget,
        seed,
        n_classes,
        class_weighted,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        image_size=image_size,
        desc=f"teacher, {budget:.0%} labels",
    )
    return history, teacher.state_dict()


def teacher_ablation(
    name: str,
    encoder_weights: Path,
    budgets: list[float],
    lrs: list[float],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    epochs: int,
    batch_size: int,
    image_size: int,
    seed: int,
    class_weighted: bool = True,
    known: dict[tuple[float, float], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Does a teacher owe its score to pretraining? Each budget's teacher from the SSL encoder and from random init.

    The recipe of `train_teachers` at each learning rate in `lrs`; one row per
    run with validation macro F1 at the best epoch (the one a teacher keeps)
    and averaged over the last ten epochs (free of that pick). SSL-initialised
    runs found in `known` (curves by (budget, lr), from `saved_teacher_histories`)
    are read, not trained again. The test split is not touched: this is a
    diagnosis, and a diagnosis must not choose on it.
    """
    known = known or {}
    inits = (encoder_weights, None)
    jobs = [{"budget": b, "encoder_weights": w, "lr": lr} for b in budgets for w in inits for lr in lrs]
    todo = [j for j in jobs if not (j["encoder_weights"] and (j["budget"], j["lr"]) in known)]
    shared = dict(name=name, splits=splits, n_classes=n_classes, epochs=epochs, batch_size=batch_size)
    shared |= dict(image_size=image_size, seed=seed, class_weighted=class_weighted)
    trained = run_all(_train_teacher, todo, shared, desc="teacher ablation") if todo else []
    fresh = {(j["budget"], j["encoder_weights"], j["lr"]): history for j, (history, _) in zip(todo, trained)}
    rows = []
    for job in jobs:
        key = (job["budget"], job["encoder_weights"], job["lr"])
        history = fresh[key] if key in fresh else known[job["budget"], job["lr"]]
        f1 = history["val_macro_f1"]
        rows.append(
            {
                "budget": job["budget"],
                "labels": len(label_subset(splits["train"][1], job["budget"], seed)),
                "init": "SimCLR (notebook 02)" if job["encoder_weights"] else "random",
                "lr": job["lr"],
                "val_macro_f1_best": float(f1.max()),
                "best_epoch": int(history.loc[f1.idxmax(), "epoch"]),
                "val_macro_f1_last10": float(f1.tail(10).mean()),
                "source": "trained here" if key in fresh else "the run's teacher (03_kd)",
            }
        )
    return pd.DataFrame(rows)


def _restore(name: str, n_classes: int, state: dict) -> nn.Module:
    model = build(name, n_classes)
    model.load_state_dict(state)
    return model.eval()


def train_teachers(
    name: str,
    encoder_weights: Path,
    budgets: list[float],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    epochs: int,
    lr: float,
    batch_size: int,
    image_size: int,
    seed: int,
    class_weighted: bool = True,
) -> dict[float, tuple[nn.Module, pd.DataFrame]]:
    """One teacher per label budget: the self-supervised encoder fine-tuned on that budget's labels only.

    A few-label student must not learn, through its teacher, from labels it
    is not allowed to see. Every teacher trains the same number of steps;
    the teachers train side by side (`helpers.parallel`).
    """
    shared = dict(
        name=name,
        encoder_weights=encoder_weights,
        splits=splits,
        n_classes=n_classes,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        image_size=image_size,
        seed=seed,
        class_weighted=class_weighted,
    )
    done = run_all(_train_teacher, [{"budget": b} for b in budgets], shared, desc="teachers")
    return {b: (_restore(name, n_classes, state), history) for b, (history, state) in zip(budgets, done)}


def _train_student(
    student: str,
    budget: float,
    method: str,
    temperature: float | None,
    seed: int,
    *,
    splits: dict,
    classes: list[str],
    teachers: dict[float, nn.Module],
    transfer_images: np.ndarray,
    label_seed: int,
    epochs: int,
    lr: float,
    batch_size: int,
    image_size: int,
    alpha: float,
    class_weighted: bool,
) -> tuple[dict, dict]:
    """One student run (a job of `helpers.parallel`): its row of results and its weights."""
    (x_va, y_va), (x_te, y_te) = splits["val"], splits["test"]
    seed_everything(seed)
    model = build(student, len(classes))
    start = time.perf_counter()
    _, labels = _fit_on_budget(
        model,
        splits,
        budget,
        label_seed,
        len(classes),
        class_weighted,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        image_size=image_size,
        teacher=None if method == "scratch" else teachers[budget],
        temperature=temperature or 1.0,
        alpha=alpha,
        transfer_images=transfer_images if method == "KD + transfer" else None,
        desc=f"{student}, {budget:.0%} labels, {method}"
        + (f" T={temperature:g}" if temperature else "")
        + f", seed {seed}",
    )
    row = {
        "student": student,
        "budget": budget,
        "labels": labels,
        "method": method,
        "temperature": temperature,
        "seed": seed,
        "chosen": True,
        "train_s": time.perf_counter() - start,
        "val_macro_f1": metrics(y_va, predict_proba(model, x_va), classes)["macro_f1"],
        **{f"test_{k}": v for k, v in metrics(y_te, predict_proba(model, x_te), classes).items()},
    }
    return row, model.state_dict()


def student_grid(
    students: list[str],
    budgets: list[float],
    temperatures: list[float],
    seeds: list[int],
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str],
    teachers: dict[float, nn.Module],
    transfer_images: np.ndarray,
    epochs: int,
    lr: float,
    batch_size: int,
    image_size: int,
    alpha: float = 0.7,
    class_weighted: bool = True,
    label_seed: int = 0,
) -> tuple[pd.DataFrame, dict[tuple, nn.Module]]:
    """Each student, at each label budget: from scratch, KD on the labels, KD on labels + transfer set.

    Every run trains the same number of optimizer steps (one pass of the
    whole train split per epoch) from the same labelled subset; the teacher
    is that budget's. T is chosen per student and budget on the *validation*
    split among `temperatures`, from the first seed's KD runs, then used for
    both KD methods at every seed. The runs go side by side in two rounds
    (`helpers.parallel`): scratch and the T trials, then the runs with the
    chosen T. Returns one row per run (`chosen` False for the T-selection runs
    that lost) and the first seed's models keyed by (student, budget, method).
    """
    shared = dict(
        splits=splits,
        classes=classes,
        teachers=teachers,
        transfer_images=transfer_images,
        label_seed=label_seed,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        image_size=image_size,
        alpha=alpha,
        class_weighted=class_weighted,
    )
    cells = [(b, s) for b in budgets for s in students]
    first = [
        dict(student=s, budget=b, method="KD", temperature=t, seed=seeds[0]) for b, s in cells for t in temperatures
    ]
    first += [dict(student=s, budget=b, method="scratch", temperature=None, seed=x) for b, s in cells for x in seeds]
    done = dict(
        zip(map(_job_key, first), run_all(_train_student, first, shared, desc="students: scratch and T trials"))
    )
    best_t = {
        (b, s): max(temperatures, key=lambda t: done[(s, b, "KD", t, seeds[0])][0]["val_macro_f1"]) for b, s in cells
    }
    for (s, b, method, t, _), (row, _) in done.items():
        row["chosen"] = method == "scratch" or t == best_t[(b, s)]
    second = [
        dict(student=s, budget=b, method="KD + transfer", temperature=best_t[(b, s)], seed=x)
        for b, s in cells
        for x in seeds
    ]
    second += [
        dict(student=s, budget=b, method="KD", temperature=best_t[(b, s)], seed=x) for b, s in cells for x in seeds[1:]
    ]
    done |= dict(zip(map(_job_key, second), run_all(_train_student, second, shared, desc="students: chosen T")))
    rows, models = [], {}
    for b, s in cells:  # the table's order: per budget and student, scratch, KD, KD + transfer; seeds in order
        t = best_t[(b, s)]
        keys = [(s, b, "scratch", None, x) for x in seeds] + [(s, b, "KD", u, seeds[0]) for u in temperatures]
        keys += [(s, b, "KD", t, x) for x in seeds[1:]] + [(s, b, "KD + transfer", t, x) for x in seeds]
        rows += [done[k][0] for k in keys]
        for method, temperature in (("scratch", None), ("KD", t), ("KD + transfer", t)):
            models[(s, b, method)] = _restore(s, len(classes), done[(s, b, method, temperature, seeds[0])][1])
    return pd.DataFrame(rows), models


def _job_key(job: dict) -> tuple:
    return job["student"], job["budget"], job["method"], job["temperature"], job["seed"]


def result_columns(classes: list[str]) -> list[str]:
    """The test metrics of a results table (and the validation score T and the deployed student are chosen by)."""
    per_class = [f"test_{m}[{c}]" for m in ("recall", "precision", "f1") for c in classes]
    return ["test_accuracy", "test_macro_f1", "test_roc_auc", *per_class, "val_macro_f1"]


def teacher_rows(
    teachers: dict[float, tuple[nn.Module, pd.DataFrame]],
    scores: dict[float, dict],
    name: str,
    train_labels: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """One row per budget's teacher, in the columns of `student_grid`'s runs: the top of the results table."""
    return pd.DataFrame(
        [
            {
                "student": f"{name} (teacher)",
                "budget": b,
                "labels": len(label_subset(train_labels, b, seed)),
                "method": "SSL + fine-tune",
                "temperature": np.nan,
                "val_macro_f1": history["val_macro_f1"].max(),
                **{f"test_{k}": v for k, v in scores[b].items()},
            }
            for b, (_, history) in teachers.items()
        ]
    )


def plot_students(runs: pd.DataFrame, teacher_scores: dict[float, dict]):
    """Test macro F1 per student and method (bars: mean ± sd over seeds), one panel per label budget, teacher dashed."""
    import seaborn as sns

    chosen = runs[runs["chosen"]]
    grid = sns.catplot(
        data=chosen.assign(budget=[f"{b:.0%} labels" for b in chosen["budget"]]),
        x="student",
        y="test_macro_f1",
        hue="method",
        col="budget",
        kind="bar",
        errorbar="sd",
        capsize=0.1,
        height=3.6,
        aspect=1.1,
        hue_order=list(METHODS),
    )
    for ax, b in zip(grid.axes.flat, chosen["budget"].unique()):  # seaborn orders panels as they appear
        ax.axhline(teacher_scores[b]["macro_f1"], ls="--", c="k", lw=1)
        ax.text(ax.get_xlim()[0], teacher_scores[b]["macro_f1"], " teacher", va="bottom", fontsize=8)
    grid.set_axis_labels("", "test macro F1 (mean ± sd over seeds)")
    grid.figure.suptitle("students: scratch, KD, KD + transfer set", y=1.03)
    return grid.figure
