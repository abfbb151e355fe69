"""Ensembles (notebook 05): soft and hard voting, flip test-time augmentation, and the case a vote fixes.

Several models trained under the same budget make different mistakes; a vote
keeps what most of them agree on. The voting rules are written here (they are
a few lines, and their tie rules matter), and tested on hand-made arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from . import tables
from .segment import predict_proba


def soft_vote(probas: np.ndarray) -> np.ndarray:
    """Mean probability over models (axis 0): M x ... -> ..."""
    return np.asarray(probas, dtype=np.float64).mean(0)


def hard_vote(masks: np.ndarray, probas: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel majority of M binary masks (axis 0).

    With an even M a pixel can tie (half the votes). A tie goes to the mean
    probability (>= 0.5 is polyp) when `probas` are given, else to background:
    half the votes is not a majority.
    """
    masks = np.asarray(masks).astype(bool)
    votes, m = masks.sum(0), len(masks)
    out = votes * 2 > m
    if probas is not None:
        out |= (votes * 2 == m) & (soft_vote(probas) >= 0.5)
    return out


def majority_class(preds: np.ndarray, n_classes: int, probas: np.ndarray | None = None) -> np.ndarray:
    """Most-voted class per sample from M x N predicted labels.

    A tie goes to the tied class with the highest mean probability when
    `probas` (M x N x K) are given, else to the lowest class index.
    """
    preds = np.asarray(preds)
    counts = np.stack([(preds == k).sum(0) for k in range(n_classes)], axis=1)  # N x K
    tied = counts == counts.max(1, keepdims=True)
    if probas is None:
        return tied.argmax(1)  # the first tied class
    return np.where(tied, soft_vote(probas), -np.inf).argmax(1)


def flip_tta(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Mean of the per-pixel predictions on N x H x W x 3 images, their horizontal and vertical flips
    (each flipped back): a cheap ensemble of one model with itself."""
    out = predict(images).astype(np.float64)
    out += predict(np.ascontiguousarray(images[:, :, ::-1]))[:, :, ::-1]
    out += predict(np.ascontiguousarray(images[:, ::-1]))[:, ::-1]
    return out / 3


def rescued(member_scores: np.ndarray, vote_scores: np.ndarray, fail_below: float = 0.5) -> np.ndarray:
    """Samples where at least one member fails (score < `fail_below`) and the vote does not, the
    biggest rescue first. Scores are per sample: Dice for masks, 1/0 for a right/wrong class."""
    member_scores, vote_scores = np.asarray(member_scores, float), np.asarray(vote_scores, float)
    worst = member_scores.min(0)
    hit = np.flatnonzero((worst < fail_below) & (vote_scores >= fail_below))
    return hit[np.argsort(-(vote_scores[hit] - worst[hit]), kind="stable")]


def member_probas(models: dict[str, nn.Module], images: np.ndarray, tta: bool = False) -> dict[str, np.ndarray]:
    """Each segmentation model's per-pixel polyp probabilities (N x H x W), plain or with flip TTA."""
    if tta:
        return {
            f"{name} + flip TTA": flip_tta(lambda x, m=model: predict_proba(m, x), images)
            for name, model in models.items()
        }
    return {name: predict_proba(model, images) for name, model in models.items()}


def vote_masks(probas: dict[str, np.ndarray], tag: str = "") -> dict[str, np.ndarray]:
    """Binary masks of the soft vote (mean probability >= 0.5) and the hard vote (per-pixel majority,
    ties to the mean probability) over all `probas`, named with the number of models and `tag`."""
    stack = np.stack(list(probas.values()))
    soft, hard = vote_names(len(stack), tag)
    return {soft: soft_vote(stack) >= 0.5, hard: hard_vote(stack >= 0.5, stack)}


def vote_names(n_models: int, tag: str = "") -> tuple[str, str]:
    """How the soft and the hard vote over `n_models` are named in every table."""
    return f"soft vote ({n_models}){tag}", f"hard vote ({n_models}){tag}"


# --- notebook 05's steps: segmentation ensembles --------------------------------------------------------------

TTA = " + flip TTA"


def member_configs(names: list[str], index: dict) -> list[dict]:
    """`<decoder>/<timm encoder>` names -> training configs, each with notebook 04's best augmentation row for
    its decoder (the overall best row for a decoder notebook 04 did not train)."""
    from .segment import ARCHITECTURES

    fallback = index["checkpoints"][index["best"]]["augmentation"]
    configs = []
    for member in names:
        arch, _, encoder = member.partition("/")
        if not encoder or arch not in ARCHITECTURES:
            raise ValueError(
                f"ensemble member {member!r}: write it as <decoder>/<timm encoder>, "
                f"decoder one of {', '.join(ARCHITECTURES)}"
            )
        augmentation = index["best_rows"].get(arch, fallback)
        configs.append({"arch": arch, "encoder": encoder, "augmentation": augmentation, "init": "random"})
    return configs


def load_or_train(
    names: list[str], configs: list[dict], index: dict, models_dir: Path, split_data: dict
) -> tuple[dict[tuple[str, int], nn.Module], list[str]]:
    """Every member for every seed of notebook 04's recipe: loaded when 04 saved it, else trained here under
    the same recipe. Returns the models by (member, seed) and one line per member saying which."""
    from .segment import checkpoint_name, load_model, train_grid

    recipe, seeds = index["recipe"], index["recipe"]["seeds"]
    members, lines = {}, []
    for member, cfg in zip(names, configs):
        saved = {s: checkpoint_name(cfg["arch"], cfg["encoder"], cfg["augmentation"], "random", s) for s in seeds}
        todo = [s for s, name in saved.items() if name not in index["checkpoints"]]
        for s in sorted(set(seeds) - set(todo)):
            members[(member, s)] = load_model(models_dir, saved[s])
        if todo:
            _, trained = train_grid(
                [cfg],
                todo,
                split_data,
                recipe["epochs"],
                recipe["lr"],
                recipe["batch_size"],
                recipe["loss"],
                recipe["optimizer"],
            )
            members |= {(member, key[-1]): model for key, model in trained.items()}
        if not todo:
            source = "loaded from notebook 04"
        elif len(todo) == len(seeds):
            source = f"trained here for seeds {todo}"
        else:
            source = f"seeds {todo} trained here, the rest loaded"
        lines.append(f"{member:>28} ({cfg['augmentation']}): {source}")
    return members, lines


def kind(name: str) -> str:
    """'vote' or 'member', from a row's model name."""
    return "vote" if "vote" in name else "member"


def score_segmentation(
    members: dict[tuple[str, int], nn.Module], names: list[str], seeds: list[int], split_data: dict
) -> tuple[pd.DataFrame, dict[int, dict[str, np.ndarray]]]:
    """Every member and vote, plain and with flip TTA, per seed: test metrics with the validation Dice beside
    (one row per model and seed), and the binary test masks by seed and name."""
    from .segment import per_image_metrics, summarise

    rows, test_masks = [], {}
    for s in seeds:
        models = {m: members[(m, s)] for m in names}
        for split in ("val", "test"):
            images, masks = split_data[split]
            predicted = {}
            for tta in (False, True):
                probas = member_probas(models, images, tta=tta)
                predicted |= {n: p >= 0.5 for n, p in probas.items()} | vote_masks(probas, TTA if tta else "")
            for name, pred in predicted.items():
                rows.append(
                    {"model": name, "seed": s, "split": split, **summarise(per_image_metrics(pred, masks), f"{split}_")}
                )
            if split == "test":
                test_masks[s] = predicted
    scores = pd.DataFrame(rows)
    by_split = {
        split: scores[scores["split"] == split].dropna(axis=1, how="all").drop(columns="split")
        for split in ("val", "test")
    }
    wide = by_split["test"].merge(by_split["val"][["model", "seed", "val_dice"]], on=["model", "seed"])
    return wide, test_masks


def centre_scores(
    members: dict[tuple[str, int], nn.Module],
    names: list[str],
    seeds: list[int],
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    best_member: str,
) -> pd.DataFrame:
    """The best member (chosen on validation) and both votes on each set (in-centre test, external centres):
    Dice and IoU with 95% bootstrap intervals over frames, per-image scores averaged over seeds."""
    from .segment import per_image_metrics, with_intervals

    rows = []
    for centre, (images, masks) in sets.items():
        per_image: dict[str, list[pd.DataFrame]] = {}
        for s in seeds:
            probas = member_probas({m: members[(m, s)] for m in names}, images)
            base = best_member.removesuffix(TTA)  # the best member may be a member with flip TTA
            best = (
                probas[base]
                if base == best_member
                else flip_tta(lambda x, m=members[(base, s)]: predict_proba(m, x), images)
            )
            predicted = {best_member: best >= 0.5} | vote_masks(probas)
            for name, pred in predicted.items():
                per_image.setdefault(name, []).append(per_image_metrics(pred, masks))
        rows += [
            {"model": name, "centre": centre, "seeds": len(seeds), **with_intervals(frames)}
            for name, frames in per_image.items()
        ]
    return pd.DataFrame(rows)


def segmentation_cost(models: dict[str, nn.Module], frame: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per frame at batch 1 of each member and each vote, plain and with flip TTA."""
    from .measure import time_call

    cost = {}
    for tta in (False, True):
        tag = TTA if tta else ""
        for name, model in models.items():
            run = lambda m={name: model}, t=tta: member_probas(m, frame, t)
            cost[name + tag] = time_call(run, repeats, 3)["median_ms"]
        vote_ms = time_call(lambda t=tta: vote_masks(member_probas(models, frame, t)), repeats, 3)["median_ms"]
        cost |= dict.fromkeys(vote_names(len(models), tag), vote_ms)
    return cost


def plot_segmentation(wide: pd.DataFrame, order: list[str]):
    """Test Dice per member and vote: mean ± sd over seeds as bars, one dot per seed."""
    import seaborn as sns

    frame = wide.assign(kind=wide["model"].map(kind))
    ax = sns.barplot(data=frame, y="model", x="test_dice", hue="kind", order=order, errorbar="sd", capsize=0.1)
    sns.stripplot(data=frame, y="model", x="test_dice", order=order, color="k", size=3, ax=ax)
    ax.set(
        xlim=(max(0, frame["test_dice"].min() - 0.08), min(1, frame["test_dice"].max() + 0.04)),
        xlabel="test Dice (mean ± sd over seeds, one dot per seed)",
        ylabel="",
    )
    ax.figure.set_size_inches(8, 4.2)
    return ax.figure


def segmentation_verdicts(summary: pd.DataFrame, n_members: int) -> tuple[list[dict], str]:
    """The best vote by validation, and the hard vote, against the best single member by validation (test Dice,
    judged by `tables.compare`, with the cost ratio). Returns the verdicts and the best member's name."""
    by_val = summary.set_index("model")
    best_member = by_val[by_val["kind"] == "member"]["val_dice_mean"].idxmax()
    best_vote = by_val[by_val["kind"] == "vote"]["val_dice_mean"].idxmax()
    verdicts = []
    for challenger in dict.fromkeys([best_vote, vote_names(n_members)[1]]):
        a, b = by_val.loc[challenger], by_val.loc[best_member]
        judged = tables.compare(a["test_dice_mean"], a["test_dice_std"], b["test_dice_mean"], b["test_dice_std"])
        ratio = float(a["ms_per_frame"] / b["ms_per_frame"])
        text = (
            f"**{challenger}** (test Dice {a['test_dice_mean']:.3f} ± {a['test_dice_std']:.3f}, "
            f"{a['ms_per_frame']:.1f} ms/frame) **{judged['words']}** the best single member by validation, "
            f"{best_member} ({b['test_dice_mean']:.3f} ± {b['test_dice_std']:.3f}, {b['ms_per_frame']:.1f} ms/frame): "
            f"difference {judged['gain']:+.3f}, at {ratio:.1f}x the cost."
        )
        verdicts.append(
            {"ensemble": challenger, "best_member": best_member, **judged, "cost_ratio": ratio, "text": text}
        )
    return verdicts, best_member


def frame_rescues(
    predicted: dict[str, np.ndarray], masks: np.ndarray, member_names: list[str], best_member: str, fail_below: float
) -> dict:
    """Frame by frame, for one seed: where the hard vote rescues a failing member, where it fails although a
    member was right, and how often it beats or loses to the best member by more than 0.01 Dice."""
    from .segment import per_image_metrics

    hard = vote_names(len(member_names))[1]
    dice = {
        n: per_image_metrics(predicted[n], masks)["dice"].to_numpy()
        for n in dict.fromkeys([*member_names, hard, best_member])
    }
    member_dice = np.stack([dice[n] for n in member_names])
    return {
        "hard": hard,
        "dice": dice,
        "rescued": rescued(member_dice, dice[hard], fail_below),
        "broken": np.flatnonzero((member_dice.max(0) >= fail_below) & (dice[hard] < fail_below)),
        "vs_best": {
            "better": int((dice[hard] > dice[best_member] + 0.01).sum()),
            "worse": int((dice[hard] < dice[best_member] - 0.01).sum()),
        },
    }


def rescue_figure(
    images: np.ndarray,
    masks: np.ndarray,
    predicted: dict[str, np.ndarray],
    found: dict,
    member_names: list[str],
    shown: int = 3,
):
    """Up to `shown` rescued frames: every member's mask and the hard vote's, each with its Dice."""
    from .segment import plot_cases

    picked, dice, hard = found["rescued"][:shown], found["dice"], found["hard"]
    captions = [
        "\n".join(f"{n.split('/')[0]}: Dice {dice[n][i]:.2f}" for n in member_names)
        + f"\nhard vote: Dice {dice[hard][i]:.2f}"
        for i in picked
    ]
    masks_shown = {n: predicted[n][picked] for n in [*member_names, hard]}
    return plot_cases(images[picked], masks[picked], masks_shown, captions)


# --- notebook 05's steps: classifier ensembles ----------------------------------------------------------------


def classifier_votes(kd_dir: Path, profile: str, reports_root: str, image_size: int) -> dict | None:
    """Notebook 03's students and teacher, and soft / hard votes over the students and over all of them, on
    validation and test. None when notebook 03 saved no students. Returns the test table (with validation
    macro F1 beside), the classes, the test and validation sizes and the students' checkpoint seed."""
    from .artifacts import read_json
    from .classify import load_saved, metrics, predict_proba
    from .data import load_split

    index_path = kd_dir / "students" / "index.json"
    if not index_path.is_file():
        return None
    students, teacher = read_json(index_path), read_json(kd_dir / "teacher.json")
    classes = students["classes"]
    classifiers = {name: load_saved(kd_dir, name) for name in students["checkpoints"]}
    classifiers[f"teacher ({teacher['model']})"] = load_saved(kd_dir)
    student_names = list(students["checkpoints"])
    groups = {
        f"all students ({len(student_names)})": student_names,
        f"students + teacher ({len(classifiers)})": list(classifiers),
    }
    rows, sizes = [], {}
    for split in ("val", "test"):
        loaded, table = load_split("classification", split, profile, reports_root, image_size)
        y = np.array([classes.index(c) for c in table["label"]])
        sizes[split] = len(y)
        probas = {name: predict_proba(m, loaded.images) for name, m in classifiers.items()}
        found = [("member", name, p, None) for name, p in probas.items()]
        for group, names in groups.items():
            stack = np.stack([probas[n] for n in names])
            # vote shares rank frames for ROC-AUC
            shares = np.stack([(stack.argmax(2) == k).mean(0) for k in range(len(classes))], 1)
            found += [
                ("vote", f"soft vote: {group}", soft_vote(stack), None),
                ("vote", f"hard vote: {group}", shares, majority_class(stack.argmax(2), len(classes), stack)),
            ]
        rows += [
            {"model": name, "kind": k, "split": split, **metrics(y, p, classes, pred=pred)}
            for k, name, p, pred in found
        ]
    long = pd.DataFrame(rows)
    test = long[long["split"] == "test"].drop(columns="split")
    val = long[long["split"] == "val"][["model", "macro_f1"]].rename(columns={"macro_f1": "val_macro_f1"})
    seed = students["checkpoints"][student_names[0]]["seed"]
    return {"summary": test.merge(val, on="model"), "classes": classes, "sizes": sizes, "seed": seed}


def classification_verdict(summary: pd.DataFrame, n_test: int) -> dict:
    """The best vote against the best single classifier, both picked on validation; test macro F1, judged
    against a noise of three test frames (one checkpoint per member: no spread over seeds)."""
    pick = lambda k: summary[summary["kind"] == k].loc[lambda t: t["val_macro_f1"].idxmax()]
    single, vote = pick("member"), pick("vote")
    noise = 3 / n_test
    judged = tables.compare(vote["macro_f1"], noise, single["macro_f1"], noise, spread_of="of three test frames")
    text = (
        f"Classification: the best vote by validation, **{vote['model']}** (test macro F1 {vote['macro_f1']:.3f}), "
        f"**{judged['words']}** the best single model by validation, {single['model']} "
        f"({single['macro_f1']:.3f}); difference {judged['gain']:+.3f}."
    )
    return {
        "best_member": single["model"],
        "best_member_macro_f1": float(single["macro_f1"]),
        "best_vote": vote["model"],
        "best_vote_macro_f1": float(vote["macro_f1"]),
        **judged,
        "text": text,
    }
