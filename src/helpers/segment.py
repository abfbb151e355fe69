"""Polyp segmentation (notebooks 04 and 05): metrics, smp models, losses, training.

Metrics are computed per image and then summarised as mean ± std over test
images, as the published Kvasir-SEG tables are. The augmentations are in
`helpers.augment`. Every configuration is trained by the same `fit`, so an
ablation row differs from another only in what it names.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from . import tables
from .augment import ABLATION, AUGMENTATIONS, SegmentationBatches, augment_batch, unnormalise
from .parallel import run_all
from .progress import progress
from .training import device, extract_features, load_encoder, seed_everything


def per_image_metrics(pred: np.ndarray, target: np.ndarray) -> pd.DataFrame:
    """Dice, IoU, pixel accuracy, precision and recall of binary N x H x W masks, one row per image.

    Empty cases follow one rule: a ratio with nothing to find and nothing found
    is 1. Both masks empty: every metric is 1. Prediction empty, polyp present:
    Dice, IoU and recall are 0, precision is 1 (no false alarm). Polyp absent,
    something predicted: Dice, IoU and precision are 0, recall is 1.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"pred and target must both be N x H x W, got {pred.shape} and {target.shape}")
    p, t = pred.reshape(len(pred), -1).astype(bool), target.reshape(len(target), -1).astype(bool)
    tp = (p & t).sum(1).astype(float)
    fp, fn = (p & ~t).sum(1).astype(float), (~p & t).sum(1).astype(float)
    tn = (~p & ~t).sum(1).astype(float)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.ones_like(num), where=den > 0)

    return pd.DataFrame(
        {
            "dice": ratio(2 * tp, 2 * tp + fp + fn),
            "iou": ratio(tp, tp + fp + fn),
            "pixel_accuracy": (tp + tn) / p.shape[1],
            "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn),
        }
    )


ARCHITECTURES = {"unet": smp.Unet, "deeplabv3plus": smp.DeepLabV3Plus, "fpn": smp.FPN}


def build(arch: str, encoder: str, encoder_weights: Path | None = None) -> nn.Module:
    """An smp model with a timm encoder (by timm name), random or from notebook 02's encoder.pt.

    No weights are downloaded. The encoder goes through smp's timm adapter
    ("tu-<name>"), whose state dict has the timm names notebook 02 saved.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    name = encoder.removeprefix("tu-")
    model = ARCHITECTURES[arch](encoder_name=f"tu-{name}", encoder_weights=None, classes=1)
    if encoder_weights is not None:
        load_encoder(model.encoder.model, encoder_weights, name)
    return model


def loss_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """'dice_bce' (soft Dice + binary cross-entropy) or 'jaccard' (soft IoU loss), on logits."""
    if name == "dice_bce":
        dice = smp.losses.DiceLoss("binary", from_logits=True)
        return lambda logits, target: dice(logits, target) + F.binary_cross_entropy_with_logits(logits, target)
    if name == "jaccard":
        return smp.losses.JaccardLoss("binary", from_logits=True)
    raise ValueError(f"unknown loss {name!r}; choose 'dice_bce' or 'jaccard'")


def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Polyp probability per pixel, N x H x W."""
    logits = extract_features(model, images, batch_size=batch_size, desc="segment")
    return torch.sigmoid(torch.from_numpy(logits[:, 0])).numpy()


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """'adamw' (fast on few epochs) or 'sgd' (momentum 0.9, as in the original project)."""
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adamw' or 'sgd'")


def train_epoch(
    model: nn.Module,
    batches,
    opt: torch.optim.Optimizer,
    criterion: Callable,
    sched: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One pass over `batches` (pairs of image and mask tensors); returns the mean training loss."""
    dev = next(model.parameters()).device
    model.train()
    losses = []
    for x, y in batches:
        batch_loss = criterion(model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        batch_loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(batch_loss.item())
    return float(np.mean(losses))


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    augment: list[str],
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    loss: str = "dice_bce",
    optimizer: str = "adamw",
    desc: str = "train",
) -> pd.DataFrame:
    """Train with cosine decay; keep the epoch with the best mean validation Dice (test never looks).

    Batches are augmented a whole batch at a time (`augment.SegmentationBatches`).
    Returns one row per epoch.
    """
    model.to(device())
    batches = SegmentationBatches(*train, augment, batch_size=batch_size, seed=seed)
    opt = make_optimizer(model, optimizer, lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * len(batches)))
    criterion = loss_fn(loss)
    history, best_dice, best_state = [], -1.0, None
    bar = progress(range(1, epochs + 1), desc=desc)
    for epoch in bar:
        train_loss = train_epoch(model, batches, opt, criterion, sched)
        val_dice = float(per_image_metrics(predict_proba(model, val[0]) >= 0.5, val[1])["dice"].mean())
        kept = val_dice > best_dice
        if kept:
            best_dice, best_state = val_dice, copy.deepcopy(model.state_dict())
        history.append({"epoch": epoch, "loss": train_loss, "val_dice": val_dice, "kept": kept})
        bar.set_postfix(loss=f"{train_loss:.3f}", val_dice=f"{val_dice:.3f}", refresh=False)
    model.load_state_dict(best_state)
    model.eval()
    return pd.DataFrame(history)


# The sets every model is scored on, besides train and val: in-centre test, out-of-centre test (a centre never
# trained on, when the data has one), and the in-centre test frames with two or more polyps (copy-paste's aim).
TEST_SETS = {"test": "in-centre test", "test_out": "out-of-centre test", "test_multi": "multi-polyp test frames"}


def load_sets(profile: str, reports_root: str, image_size: int) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], str]:
    """(images, masks) of train, val and every test set in `TEST_SETS` the data has; and a line of their sizes."""
    from .data import OUT_OF_CENTRE, load_split, read_data_report

    report = read_data_report(profile, reports_root)
    splits = ["train", "val", "test"] + [OUT_OF_CENTRE] * ("test_out" in report["counts"].get("segmentation", {}))
    sets = {}
    for split in splits:
        loaded, rows = load_split("segmentation", split, profile, reports_root, image_size)
        sets[split] = (loaded.images, loaded.masks)
        if split == "test":
            multi = rows["stratum"].str[0].astype(int).to_numpy() >= 2  # "2 polyp(s)", "3 polyp(s)"
            if multi.any():
                sets["test_multi"] = (loaded.images[multi], loaded.masks[multi])
    line = " / ".join(f"{TEST_SETS.get(k, k)} {len(v[0])}" for k, v in sets.items())
    return sets, line + " frames"


def summarise(per_image: pd.DataFrame, prefix: str = "") -> dict[str, float]:
    """Mean of each per-image metric, and the spread of Dice over images (`dice_sd_images`)."""
    out = {f"{prefix}{k}": float(v) for k, v in per_image.mean().items()}
    out[f"{prefix}dice_sd_images"] = float(per_image["dice"].std(ddof=0))
    return out


def _train_one(
    cfg: dict,
    seed: int,
    *,
    data: dict,
    epochs: int,
    lr: float,
    batch_size: int,
    loss: str,
    optimizer: str,
    encoder_weights: Path | None,
) -> tuple[dict, dict]:
    """One run of `train_grid` (a job of `helpers.parallel`): its row of results and its weights."""
    seed_everything(seed)
    model = build(cfg["arch"], cfg["encoder"], encoder_weights if cfg["init"] == "SSL" else None)
    start = time.perf_counter()
    name = f"{cfg['arch']}/{cfg['encoder']} {cfg['augmentation']} {cfg['init']} seed {seed}"
    augment = cfg.get("augment", ABLATION.get(cfg["augmentation"]))
    history = fit(model, data["train"], data["val"], augment, epochs, lr, batch_size, seed, loss, optimizer, desc=name)
    train_s = time.perf_counter() - start
    scores = {}
    for name, (images, masks) in data.items():
        if name not in ("train", "val"):
            scores |= summarise(per_image_metrics(predict_proba(model, images) >= 0.5, masks), f"{name}_")
    row = {
        "arch": cfg["arch"],
        "encoder": cfg["encoder"],
        "augmentation": cfg["augmentation"],
        "init": cfg["init"],
        "seed": seed,
        "epochs": epochs,
        "best_epoch": int(history["val_dice"].idxmax() + 1),
        "train_s": train_s,
        "val_dice": float(history["val_dice"].max()),
        **scores,
    }
    return row, model.state_dict()


def train_grid(
    configs: list[dict],
    seeds: list[int],
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    epochs: int,
    lr: float,
    batch_size: int,
    loss: str = "dice_bce",
    optimizer: str = "adamw",
    encoder_weights: Path | None = None,
) -> tuple[pd.DataFrame, dict[tuple, nn.Module]]:
    """Train every configuration once per seed under the same budget; score validation and every test set.

    A config names `arch`, `encoder`, `augmentation` (a key of `ABLATION`, or
    any label with an `augment` list) and `init` ('random' or 'SSL', which
    needs `encoder_weights`). `data` maps "train", "val" and test sets (e.g.
    "test", "test_out", `load_sets`) to (images, masks); each test set gives
    columns ``<set>_dice``, ``<set>_iou``, .... The runs go side by side
    (`helpers.parallel`). Returns one row per run and every trained model
    keyed by (arch, encoder, augmentation, init, seed).
    """
    for cfg in configs:
        if cfg.get("augment", ABLATION.get(cfg["augmentation"])) is None:
            raise ValueError(f"config {cfg}: no `augment` list and {cfg['augmentation']!r} is not an ABLATION row")
        if cfg["init"] == "SSL" and encoder_weights is None:
            raise ValueError("an SSL-initialised config needs `encoder_weights` (notebook 02's encoder.pt)")
    jobs = [{"cfg": cfg, "seed": seed} for cfg in configs for seed in seeds]
    shared = dict(
        data=data,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        loss=loss,
        optimizer=optimizer,
        encoder_weights=encoder_weights,
    )
    rows, models = [], {}
    for job, (row, state) in zip(jobs, run_all(_train_one, jobs, shared, desc="segmentation runs")):
        cfg = job["cfg"]
        model = build(cfg["arch"], cfg["encoder"])
        model.load_state_dict(state)
        rows.append(row)
        models[(cfg["arch"], cfg["encoder"], cfg["augmentation"], cfg["init"], job["seed"])] = model.eval()
    return pd.DataFrame(rows), models


# The course brief's published U-Net results on Kvasir-SEG (900/100, SGD 1e-2, batch 8, 60 epochs).
PUBLISHED = pd.DataFrame(
    [
        {"model": "UNet", "setting": "no augmentation", "iou": 0.592, "dice": 0.744},
        {"model": "UNet", "setting": "augmentation", "iou": 0.649, "dice": 0.787},
        {"model": "UNet", "setting": "pretrained encoder + augmentation", "iou": 0.653, "dice": 0.790},
        {"model": "DoubleU-Net", "setting": "augmentation", "iou": 0.710, "dice": 0.830},
    ]
)


def best_row(summary: pd.DataFrame, arch: str, augmented: bool = False) -> str | None:
    """The randomly initialised ablation row with the best mean *validation* Dice for `arch`; with `augmented`,
    the best among the rows that augment (None when the run trained none)."""
    rows = summary[(summary["arch"] == arch) & (summary["init"] == "random")]
    if augmented:
        rows = rows[rows["augmentation"] != "none"]
    return str(rows.loc[rows["val_dice_mean"].idxmax(), "augmentation"]) if len(rows) else None


def _row(summary: pd.DataFrame, arch: str, augmentation: str, init: str = "random") -> pd.Series:
    hit = summary[(summary["arch"] == arch) & (summary["augmentation"] == augmentation) & (summary["init"] == init)]
    if hit.empty:
        raise KeyError(f"no {arch} / {augmentation} / {init} row in the summary")
    return hit.iloc[0]


def comparison(
    summary: pd.DataFrame,
    arch: str,
    new: tuple[str, str],
    base: tuple[str, str],
    metric: str = "dice",
    test_set: str = "test",
) -> dict:
    """`metric` on `test_set` of one ablation row (augmentation, init) against another, by `tables.compare`."""
    a, b = _row(summary, arch, *new), _row(summary, arch, *base)
    key = f"{test_set}_{metric}"
    judged = tables.compare(a[f"{key}_mean"], a[f"{key}_std"], b[f"{key}_mean"], b[f"{key}_std"])
    label = lambda r: r["augmentation"] + (" + SSL init" if r["init"] == "SSL" else "")
    text = (
        f"{arch}, {TEST_SETS.get(test_set, test_set)}: **{label(a)}** ({a[f'{key}_mean']:.3f} ± {a[f'{key}_std']:.3f}) "
        f"**{judged['words']}** {label(b)} ({b[f'{key}_mean']:.3f} ± {b[f'{key}_std']:.3f}); "
        f"{metric}, difference {judged['gain']:+.3f} over {int(a['runs'])} seed(s)."
    )
    return {
        "arch": arch,
        "new": label(a),
        "base": label(b),
        "metric": metric,
        "test_set": test_set,
        **judged,
        "text": text,
    }


def ablation_verdicts(summary: pd.DataFrame, arch: str, test_set: str = "test") -> list[dict]:
    """The questions the ablation asks, for one architecture and test set: does each row beat no augmentation,
    does copy-paste add to the basic augmentations, does SSL init help the best row. On the multi-polyp
    frames, only the copy-paste questions."""
    rows = set(summary.loc[(summary["arch"] == arch) & (summary["init"] == "random"), "augmentation"])
    if test_set == "test_multi":  # the frames copy-paste was made for: ask only about copy-paste
        rows &= {"none", "+ blur", "+ copy-paste"}
    out = [
        comparison(summary, arch, (r, "random"), ("none", "random"), test_set=test_set)
        for r in ABLATION
        if r != "none" and r in rows and "none" in rows
    ]
    if {"+ copy-paste", "+ blur"} <= rows:
        out.append(comparison(summary, arch, ("+ copy-paste", "random"), ("+ blur", "random"), test_set=test_set))
    ssl_rows = summary[(summary["arch"] == arch) & (summary["init"] == "SSL")]
    for aug in ssl_rows["augmentation"] if test_set != "test_multi" else []:
        out.append(comparison(summary, arch, (aug, "SSL"), (aug, "random"), test_set=test_set))
    return out


def still_improving(runs: pd.DataFrame) -> tuple[int, bool]:
    """How many runs kept one of their last two epochs (chosen on validation), and whether that is most of them:
    then the budget, not the idea, limited the ablation."""
    still = int((runs["best_epoch"] >= runs["epochs"] - 1).sum())
    return still, still > len(runs) / 2


def budget_line(runs: pd.DataFrame) -> str:
    """Whether the budget let the runs fit their training frames: an under-fitted ablation compares budgets,
    not ideas."""
    still, most = still_improving(runs)
    if most:
        return f"{still} of {len(runs)} runs kept one of their last two epochs: still improving when the budget ended"
    return (
        f"{len(runs) - still} of {len(runs)} runs peaked before their last two epochs: the budget let them fit "
        "the training frames"
    )


def augmentation_lesson(verdicts: list[dict], runs: pd.DataFrame) -> str:
    """Does the literature's lesson (augmentation helps when labelled frames are scarce) show in this run? Read
    from every verdict of an augmented row against `none` (any architecture, any test set); where it does not
    show, the likely reason, read from the budget. Never tuned for: the sentence says what was measured."""
    against = [v for v in verdicts if v["base"] == "none" and not v["new"].endswith("SSL init")]
    if not against:
        return "The augmentation lesson was not asked: this run trained no augmented row beside `none`."
    count = lambda outcome: sum(v["outcome"] == outcome for v in against)
    where = lambda v: f"{v['arch']} {v['new']} ({TEST_SETS.get(v['test_set'], v['test_set'])}, {v['gain']:+.3f})"
    better = [v for v in against if v["outcome"] == "better"]
    if better:
        return (
            f"The augmentation lesson **shows** in {len(better)} of {len(against)} comparisons with `none`: "
            + "; ".join(where(v) for v in better)
            + f" beyond the spread over seeds; {count('worse')} are worse."
        )
    text = (
        f"The augmentation lesson (augmentation helps when labelled frames are scarce) **does not show** in this "
        f"run: no augmented row beats `none` beyond the spread over seeds ({count('worse')} of {len(against)} "
        f"comparisons are worse, {count('tie_above') + count('tie_below')} within the spread)."
    )
    still, most = still_improving(runs)
    if most:
        return text + (
            f" The likely reason: {still} of {len(runs)} runs were still improving on validation when the budget "
            "ended. The models are under-fitted, and augmentation, a regulariser that pays when a model would "
            "otherwise memorise its training frames, only makes those frames harder to fit. More epochs "
            "(`seg_epochs`) or the `full` profile are where it can pay."
        )
    return text + (
        f" The budget was not the limit ({budget_line(runs)}): on this data these augmentations do not help; "
        "compare the augmented frames with the test frames."
    )


def plot_ablation(runs: pd.DataFrame, metric: str = "dice"):
    """Bars of `metric` per ablation row and architecture, one panel per test set: mean ± sd over seeds,
    one dot per seed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = runs.assign(
        row=[a + (" + SSL init" if i == "SSL" else "") for a, i in zip(runs["augmentation"], runs["init"])]
    )
    sets = [s for s in TEST_SETS if f"{s}_{metric}" in frame]
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.0), squeeze=False, sharey=True)
    values = frame[[f"{s}_{metric}" for s in sets]].to_numpy()
    for ax, s in zip(axes[0], sets):
        col = f"{s}_{metric}"
        sns.barplot(data=frame, x="row", y=col, hue="arch", errorbar="sd", capsize=0.08, ax=ax, alpha=0.85)
        sns.stripplot(data=frame, x="row", y=col, hue="arch", dodge=True, ax=ax, palette="dark:k", size=3, legend=False)
        ax.set(
            ylim=(max(0.0, np.nanmin(values) - 0.1), min(1.0, np.nanmax(values) + 0.05)),
            xlabel="augmentation (cumulative)",
            ylabel=f"{metric} (mean ± sd over seeds)",
            title=TEST_SETS[s],
        )
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot_cases(images: np.ndarray, masks: np.ndarray, preds: dict[str, np.ndarray], captions: list[str]):
    """One column per frame: the image, the ground truth (green) and each named prediction (magenta) overlaid."""
    import matplotlib.pyplot as plt

    from .runtime import overlay

    rows = [("image", images), ("ground truth", [overlay(im, m) for im, m in zip(images, masks)])]
    rows += [
        (name, [overlay(im, p, colour=(255, 0, 255)) for im, p in zip(images, pred)]) for name, pred in preds.items()
    ]
    fig, axes = plt.subplots(
        len(rows), len(images), figsize=(1.9 * len(images) + 0.8, 1.95 * len(rows) + 0.5), squeeze=False
    )
    for r, (name, panels) in enumerate(rows):
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if r == 0:
                ax.set_title(captions[c], fontsize=7)
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.tight_layout()
    return fig


def show_augmentations(images: np.ndarray, masks: np.ndarray, pool: tuple[np.ndarray, np.ndarray], seed: int = 0):
    """Each named augmentation applied for sure (p = 1) to a few frames, mask outline drawn: what a row adds."""
    import matplotlib.pyplot as plt

    from .augment import CopyPaste
    from .runtime import overlay

    names = ["original", *AUGMENTATIONS]
    fig, axes = plt.subplots(len(images), len(names), figsize=(1.6 * len(names), 1.75 * len(images)), squeeze=False)
    for c, name in enumerate(names):
        shown_images, shown_masks = images, masks
        if name == "copy_paste":
            paste = CopyPaste(*pool, p=1.0, seed=seed)
            pasted = [paste(i, m) for i, m in zip(images, masks)]
            shown_images, shown_masks = np.stack([i for i, _ in pasted]), np.stack([m for _, m in pasted])
        x, y = augment_batch(
            torch.from_numpy(shown_images).permute(0, 3, 1, 2),
            torch.from_numpy(shown_masks)[:, None],
            [name] if name in AUGMENTATIONS and name != "copy_paste" else [],
            1.0,
            torch.Generator().manual_seed(seed),
        )
        for r, (image, mask) in enumerate(zip(unnormalise(x), y[:, 0].numpy())):
            axes[r, c].imshow(overlay(image, mask, alpha=0.0))
            axes[r, c].set_axis_off()
        axes[0, c].set_title(name.replace("_", "-"), fontsize=8)
    fig.tight_layout()
    return fig


def published_comparison(summary: pd.DataFrame, comparable: bool) -> pd.DataFrame:
    """Our U-Net rows next to the course brief's published ones, matched by setting.

    'augmentation' is matched with U-Net's best *augmented* row by validation
    Dice (a row without augmentation is no match for it, even when it won);
    'pretrained encoder + augmentation' with the SSL-initialised row, which is
    trained on U-Net's best row and so may lack augmentation. `comparable`
    says whether the run used the published data and setting (real Kvasir-SEG
    at full resolution); the last column says, per row, every way in which the
    two differ.
    """
    ssl = summary[(summary["arch"] == "unet") & (summary["init"] == "SSL")]
    ours = {
        "no augmentation": ("none", "random"),
        "augmentation": (best_row(summary, "unet", augmented=True), "random"),
        "pretrained encoder + augmentation": (ssl["augmentation"].iloc[0] if len(ssl) else None, "SSL"),
    }
    rows = []
    for pub in PUBLISHED[PUBLISHED["model"] == "UNet"].itertuples():
        aug, init = ours[pub.setting]
        hit = summary[(summary["arch"] == "unet") & (summary["augmentation"] == aug) & (summary["init"] == init)]
        gaps = [] if comparable else ["other data / resolution / budget"]
        if len(hit) and pub.setting != "no augmentation" and aug == "none":
            gaps.append("this row has no augmentation")
        rows.append(
            {
                "setting": pub.setting,
                "published dice": pub.dice,
                "published iou": pub.iou,
                "this run": f"unet · {aug} · {init} init" if len(hit) else "not run",
                "dice": hit["test_dice_mean"].iloc[0] if len(hit) else np.nan,
                "iou": hit["test_iou_mean"].iloc[0] if len(hit) else np.nan,
                "comparable": "yes" if len(hit) and not gaps else "no: " + ("; ".join(gaps) or "not run"),
            }
        )
    return pd.DataFrame(rows)


# Published cross-dataset U-Net results (the sources): train on one centre's data, test on another's.
PUBLISHED_CROSS = pd.DataFrame(
    [
        {
            "source": "PraNet / Polyp-PVT tables",
            "model": "U-Net",
            "trained on": "Kvasir-SEG + CVC-ClinicDB",
            "in-centre test": "Kvasir-SEG",
            "in dice": 0.818,
            "out-of-centre test": "ETIS-LaribPolypDB",
            "out dice": 0.398,
        },
        {
            "source": "DUCK-Net cross-dataset table",
            "model": "U-Net",
            "trained on": "Kvasir-SEG",
            "in-centre test": "",
            "in dice": np.nan,
            "out-of-centre test": "CVC-ClinicDB",
            "out dice": 0.701,
        },
    ]
)


def cross_centre_comparison(
    summary: pd.DataFrame, best_rows: dict[str, str], held_out: str | None, comparable: bool
) -> pd.DataFrame:
    """In-centre vs out-of-centre test Dice of each architecture's plain and best row, beside `PUBLISHED_CROSS`.

    `retained` is out / in: the share of Dice that survives another centre.
    """
    rows = PUBLISHED_CROSS.assign(comparable="published")
    if "test_out_dice_mean" in summary:
        ours = []
        for arch, best in best_rows.items():
            for aug in dict.fromkeys(["none", best]):
                r = _row(summary, arch, aug)
                ours.append(
                    {
                        "source": "this run",
                        "model": f"{arch} · {aug}",
                        "trained on": "in-centre train split",
                        "in-centre test": "test",
                        "in dice": r["test_dice_mean"],
                        "out-of-centre test": f"test_out (centre {held_out})",
                        "out dice": r["test_out_dice_mean"],
                        "comparable": "yes" if comparable else "no: synthetic centres, 64 px, short budget",
                    }
                )
        rows = pd.concat([rows, pd.DataFrame(ours)], ignore_index=True)
    return rows.assign(retained=rows["out dice"] / rows["in dice"])


def with_intervals(per_image: list[pd.DataFrame], seed: int = 0) -> dict[str, float]:
    """Mean Dice and IoU over frames with 95% bootstrap intervals over frames; per-image scores are first
    averaged over the given runs (seeds) of a model, so the interval is about the frames, not the seeds."""
    frame = pd.concat(per_image).groupby(level=0).mean()
    out: dict[str, float] = {"frames": len(frame)}
    for metric in ("dice", "iou"):
        lo, hi = tables.bootstrap_ci(frame[metric].to_numpy(), seed=seed)
        out |= {metric: float(frame[metric].mean()), f"{metric}_lo": lo, f"{metric}_hi": hi}
    return out


def centre_drops(summary: pd.DataFrame) -> str:
    """Out-of-centre minus in-centre mean test Dice for each row of an ablation summary, in one sentence."""
    return "; ".join(
        f"{r.arch} {r.augmentation}{' + SSL' if r.init == 'SSL' else ''} "
        + tables.signed(r.test_out_dice_mean - r.test_dice_mean)
        for r in summary.itertuples()
    )


def centre_scores(models: dict[str, list[nn.Module]], sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Each model (its runs over seeds) on each set (in-centre test, external centres): Dice and IoU with 95%
    bootstrap intervals over frames, one row per model and set."""
    rows = []
    for label, runs in models.items():
        for centre, (images, masks) in sets.items():
            per_image = [per_image_metrics(predict_proba(m, images) >= 0.5, masks) for m in runs]
            rows.append({"model": label, "centre": centre, "seeds": len(runs), **with_intervals(per_image)})
    return pd.DataFrame(rows)


def plot_centres(table: pd.DataFrame):
    """Dice per model and centre with its 95% interval: the drop from the in-centre test to each other centre."""
    import matplotlib.pyplot as plt

    centres, models = list(dict.fromkeys(table["centre"])), list(dict.fromkeys(table["model"]))
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 * len(centres) * len(models) ** 0.5), 3.8))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = table[table["model"] == model].set_index("centre").reindex(centres)
        x = np.arange(len(centres)) + (i - (len(models) - 1) / 2) * width
        err = np.vstack([rows["dice"] - rows["dice_lo"], rows["dice_hi"] - rows["dice"]])
        ax.bar(x, rows["dice"], width, yerr=err, capsize=3, label=model, alpha=0.85)
    ax.set_xticks(np.arange(len(centres)), centres, fontsize=8)
    ax.set(ylabel="Dice (mean over frames, 95% bootstrap interval)", ylim=(0, 1))
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def setting_gaps(origin: str, image_size: int, profile: str) -> str:
    """Why this run's numbers are not the published setting (352 px, 60 epochs on real Kvasir-SEG)."""
    gaps = [] if origin == "real" else ["synthetic training data"]
    gaps += [] if image_size >= 352 else [f"{image_size} px"]
    gaps += [] if profile == "full" else ["short training budget"]
    return ", ".join(gaps + ["other test split"])


def published_beside(table: pd.DataFrame, reasons: str) -> pd.DataFrame:
    """This run's per-centre Dice next to `PUBLISHED_CROSS`, each row saying whether the setting is the same."""
    ours = table.assign(source="this run", comparable=f"no: {reasons}")[
        ["source", "model", "centre", "dice", "dice_lo", "dice_hi", "comparable"]
    ]
    published = PUBLISHED_CROSS.melt(
        id_vars=["source", "model"], value_vars=["in dice", "out dice"], value_name="dice"
    ).merge(PUBLISHED_CROSS, on=["source", "model"])
    published["centre"] = np.where(
        published["variable"] == "in dice", published["in-centre test"], published["out-of-centre test"]
    )
    published = published.dropna(subset=["dice"]).assign(dice_lo=np.nan, dice_hi=np.nan, comparable="published")
    return pd.concat([ours, published[ours.columns]], ignore_index=True)


def checkpoint_name(arch: str, encoder: str, augmentation: str, init: str, seed: int) -> str:
    slug = "-".join("".join(ch if ch.isalnum() else " " for ch in augmentation).split()) or "none"
    return f"{arch}_{encoder}_{slug}_{init.lower()}_seed{seed}"


def save_models(
    folder: Path,
    models: dict[tuple, nn.Module],
    keep: set[tuple],
    runs: pd.DataFrame,
    test_sets: list[str],
    image_size: int,
    recipe: dict,
    best_rows: dict[str, str],
    best: tuple,
) -> dict[str, dict]:
    """Write the kept models' weights and ``index.json``, the file `load_model`, notebooks 05/06 and the report read.

    `models` and `keep` are keyed by (arch, encoder, augmentation, init, seed); each index entry records the
    architecture and augmentation (plain JSON, no pickled code) and the run's validation and test Dice;
    `best` is the configuration chosen on validation for deployment. Returns the index entries by name.
    """
    from .artifacts import write_json
    from .training import save_weights

    scores = runs.set_index(["arch", "encoder", "augmentation", "init", "seed"])
    checkpoints = {}
    for key in sorted(keep):
        name = checkpoint_name(*key)
        save_weights(models[key], Path(folder) / f"{name}.pt")
        arch, encoder, augmentation, init, seed = key
        checkpoints[name] = {
            "arch": arch,
            "encoder": encoder,
            "augmentation": augmentation,
            "augment": ABLATION[augmentation],
            "init": init,
            "seed": seed,
            "val_dice": float(scores.loc[key, "val_dice"]),
            **{f"{s}_dice": float(scores.loc[key, f"{s}_dice"]) for s in test_sets},
        }
    index = {
        "image_size": image_size,
        "recipe": recipe,
        "best_rows": best_rows,
        "checkpoints": checkpoints,
        "best": checkpoint_name(*best),
    }
    write_json(Path(folder) / "index.json", index)
    return checkpoints


def load_model(folder: Path, name: str) -> nn.Module:
    """A model notebook 04 saved: architecture from ``index.json`` (plain JSON), weights only."""
    from .artifacts import read_json
    from .training import load_weights

    entry = read_json(Path(folder) / "index.json")["checkpoints"][name]
    return load_weights(build(entry["arch"], entry["encoder"]), Path(folder) / f"{name}.pt").eval()
