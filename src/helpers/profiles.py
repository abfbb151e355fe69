"""The course's run profiles, defined once.

Every notebook receives its knobs as Papermill parameters built here, so the
`smoke` (tests), `cpu` (default, a laptop) and `full` (real data on a GPU)
settings never drift between notebooks. A notebook opened by hand runs with
the `cpu` values written in its `parameters` cell; a test checks that those
cell defaults equal `PROFILES["cpu"]`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PROFILE_NAMES = ("smoke", "cpu", "full")


@dataclass(frozen=True)
class SyntheticSpec:
    """How much embedded (procedural) data to generate, and at what size."""

    per_class: int  # images of the largest class (normal); others follow synthetic.CLASS_SHARE
    seg_pairs: int  # Kvasir-SEG style image/mask pairs
    unlabeled: int  # frames in the self-supervised pool
    min_side: int  # generated frames vary in size like real ones
    max_side: int


@dataclass(frozen=True)
class Profile:
    """One run profile. `params` are the names every notebook shares."""

    name: str
    description: str
    seed: int
    image_size: int
    batch_size: int  # notebook 03's classifiers (each other stage has its own batch size)
    val_fraction: float
    test_fraction: float
    synthetic: SyntheticSpec
    expects_real_data: bool = False
    threads: int | None = None  # CPU threads of a pinned course run (see helpers.numerics); None: every core
    # At most this many train frames per task (a seeded draw; the rest are recorded as split `unused`): how a
    # large real dataset fits a profile's time budget. None: every train frame.
    max_train_frames: int | None = None
    # (val, test) fractions for one task instead of val_fraction/test_fraction: a task whose evaluation splits
    # would otherwise be too small to tell its models apart.
    task_fractions: dict[str, tuple[float, float]] = field(default_factory=dict)
    notebook_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def params(self, data_root: str = "", reports_root: str = "") -> dict[str, Any]:
        """Parameters shared by the notebooks; each notebook declares (and receives) only those it reads."""
        return {
            "profile": self.name,
            "seed": self.seed,
            "image_size": self.image_size,
            "batch_size": self.batch_size,
            "data_root": data_root,
            "reports_root": reports_root,
        }

    def params_for(self, notebook: str, data_root: str = "", reports_root: str = "") -> dict[str, Any]:
        """Shared parameters plus the ones only `notebook` (its stem) uses; the runner passes the declared ones."""
        out = self.params(data_root=data_root, reports_root=reports_root)
        out.update(self.notebook_params.get(notebook, {}))
        return out

    def fractions(self, task: str) -> tuple[float, float]:
        """(val, test) fractions of `task`'s frames (the centres it trains on)."""
        return self.task_fractions.get(task, (self.val_fraction, self.test_fraction))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The `cpu` profile's per-notebook settings: the base every profile starts from (and the defaults written in
# each notebook's `parameters` cell). `smoke` and `full` list only what they change.
CPU_NOTEBOOKS: dict[str, dict[str, Any]] = {
    # ResNet-18, not the ResNet-50 of `full`: ~4x faster on 2 cores, so pretraining fits in ~3 minutes.
    "02_contrastive_pretraining": {
        "ssl_encoder": "resnet18",
        "ssl_epochs": 15,
        "ssl_lr": 2e-3,
        "ssl_batch_size": 64,
        "temperature": 0.5,
        "label_fractions": [0.1, 1.0],
        "probe_repeats": 5,
    },
    # Teacher: notebook 02's ResNet-18 (11.2 M parameters); students ResNet-10t (4.9 M) and MobileNetV3-small
    # (1.5 M), so the teacher is larger than every student. Two teachers (one per label budget), students
    # 2 x 2 x 7 runs each. Students: 2 seeds, 6 epochs (for the time budget). The teacher trains once, 100 epochs
    # (6.2 min, side by side with the few-label one). All-label teacher, validation / 1,596 extra synthetic frames
    # (seed 7, never a split of the course), macro F1: 60 epochs 0.83 / 0.79 and 0.83 / 0.83 (seeds 0, 1); 100 epochs
    # 0.84 / 0.83 and 0.86 / 0.84; 25 epochs (before the 30% split) 0.78 on the extra frames. A ResNet-10t from
    # scratch, 6 epochs: 0.75 / 0.73. The few-label teacher stays at 0.71 / 0.68 at 60 and at 100 epochs.
    # Few labels = 25% (72 frames), chosen on validation (scripts/label_budget.py): at 10% (29 frames) the teacher
    # (0.683) was level with ResNet-10t from scratch (0.656 +- 0.006), nothing to teach; at 25% it leads it,
    # 0.788 against 0.716 +- 0.005. `full` keeps 10%: of real Kvasir v2 that is already hundreds of frames.
    "03_knowledge_distillation": {
        "teacher_epochs": 100,
        "teacher_lr": 1e-3,
        "students": ["resnet10t", "mobilenetv3_small_100"],
        "label_budgets": [0.25, 1.0],
        "student_epochs": 6,
        "student_lr": 1e-3,
        "temperatures": [1.0, 4.0],
        "alpha": 0.7,
        "student_seeds": [0, 1],
        "class_weighted": True,
        "latency_repeats": 30,
        # Map method and layer stride, chosen on validation frames with masks (explain.choose_cam). Measured on the
        # c70df09 run's validation frames, weaker model's pointing-game lead over random maps: Grad-CAM 0.00 (stride 8)
        # / 0.08 (16), HiResCAM 0.04 / 0.10; a 96 or 128 px CAM pass of the 64 px models was no better.
        "cam_strides": [8, 16],
        "cam_examples": 6,
    },
    # U-Net: 5 rows; DeepLabV3+: both ends; SSL init of each best row; 2 seeds: 18 runs, two at a time.
    # Batch 8 chosen on validation (U-Net none, seed 0: val Dice 0.744 at batch 8 vs 0.685 at 16, 8 epochs);
    # 6 epochs, not 8: the 25-minute budget.
    "04_segmentation_augmentation": {
        "seg_archs": ["unet", "deeplabv3plus"],
        "seg_encoder": "resnet18",
        "ablation_rows": ["none", "geometric", "+ colour", "+ blur", "+ copy-paste"],
        "seg_epochs": 6,
        "seg_lr": 2e-3,
        "seg_batch_size": 8,
        "seg_optimizer": "adamw",
        "seg_loss": "dice_bce",
        "seg_seeds": [0, 1],
        "arch_comparison_rows": ["none", "+ copy-paste"],
        "overlay_examples": 4,
    },
    "05_ensembling": {
        "ensemble_members": ["deeplabv3plus/resnet18", "unet/resnet18", "fpn/resnet18"],
        "fail_below": 0.5,
        "latency_repeats": 20,
    },
    "06_openvino_deployment": {
        "calibration_frames": 128,
        "bench_repeats": 50,
        "async_requests": 4,
        "async_frames": 200,
        "benchmark_app_seconds": 5,
        "parity_tolerance": 1e-3,
        # INT8 must agree with FP32 on validation: all but 1% of the classes; masks at a mean Dice >= 0.98.
        # At 0.99 for masks NNCF's greedy search reverted 31 of the cpu segmenter's 35 compute ops (3+ minutes):
        # at 64 px INT8 moves mask borders by ~2% Dice however many ops stay INT8 (notebook 06, section 2).
        "int8_max_drop": {"classification": 0.01, "segmentation": 0.02},
        "serve_clients": [1, 4, 16],
        "serve_seconds": 3,
    },
}


def _changed(**changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The cpu notebook settings with `changes` (notebook stem -> the settings it changes) applied."""
    unknown = {f"{nb}.{k}" for nb, c in changes.items() for k in c if k not in CPU_NOTEBOOKS.get(nb, {})}
    if unknown:
        raise KeyError(f"profile changes settings the cpu profile does not have: {sorted(unknown)}")
    return {nb: {**params, **changes.get(nb, {})} for nb, params in CPU_NOTEBOOKS.items()}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="Tiny data, 1 epoch: checks that every notebook runs (tests, CI).",
        seed=0,
        image_size=64,
        batch_size=8,
        val_fraction=0.2,
        test_fraction=0.2,
        synthetic=SyntheticSpec(per_class=20, seg_pairs=24, unlabeled=24, min_side=96, max_side=128),
        threads=2,
        max_train_frames=96,  # real data in the tests (Kvasir-SEG has 748 train frames): a minute, not six
        notebook_params=_changed(
            **{
                "02_contrastive_pretraining": {
                    "ssl_epochs": 1,
                    "ssl_batch_size": 16,
                    "label_fractions": [0.25, 1.0],
                    "probe_repeats": 2,
                },
                "03_knowledge_distillation": {
                    "teacher_epochs": 1,
                    "student_epochs": 1,
                    "latency_repeats": 3,
                    "cam_examples": 4,
                },
                "04_segmentation_augmentation": {"seg_epochs": 1, "seg_seeds": [0], "overlay_examples": 3},
                "05_ensembling": {"latency_repeats": 3},
                "06_openvino_deployment": {
                    "calibration_frames": 16,
                    "bench_repeats": 5,
                    "async_frames": 20,
                    "benchmark_app_seconds": 1,
                    "serve_clients": [1, 4],
                    "serve_seconds": 1,
                },
            }
        ),
    ),
    "cpu": Profile(
        name="cpu",
        description="Default: synthetic data for a 2-core laptop (20.5 min measured uncontended, ~28 at the "
        "machine's earlier, slower speed; the budget is 25); "
        "real Kvasir-SEG 31 min (500 train frames; budget 40).",
        seed=0,
        image_size=64,
        batch_size=32,
        val_fraction=0.15,
        test_fraction=0.15,
        synthetic=SyntheticSpec(per_class=720, seg_pairs=300, unlabeled=600, min_side=192, max_side=320),
        threads=2,  # the machine the course is sized for; the same count everywhere gives the same sums
        # Real data on a laptop: Kvasir-SEG's 748 train frames made notebook 04 alone ~26 minutes (14 runs, 223 s
        # per run on one core); 500 keep the whole course within 40 minutes. The synthetic sets are smaller.
        max_train_frames=500,
        # Classification: 25% val, 50% test of the 1,154 in-centre frames among 1,440 (289 train, 288 val, 577 test).
        # At 15% the test split held 59 frames, at 30% 215: a standard error of ~0.03 in macro F1, as large as the
        # gap between the all-label teacher and ResNet-10t from scratch on 215 frames (+0.020), while on 1,596 more
        # frames (seed 7, never a split) the two were 0.09 apart. The train split keeps its size:
        # training costs the same.
        task_fractions={"classification": (0.25, 0.5)},
        notebook_params=_changed(),
    ),
    "full": Profile(
        name="full",
        description="Real data at published resolutions and epochs, for a GPU (starts on CPU, slowly).",
        seed=0,
        image_size=352,
        batch_size=8,
        val_fraction=0.1,
        test_fraction=0.1,
        synthetic=SyntheticSpec(per_class=1000, seg_pairs=1000, unlabeled=3000, min_side=332, max_side=1024),
        expects_real_data=True,
        notebook_params=_changed(
            **{
                "02_contrastive_pretraining": {
                    "ssl_encoder": "resnet50",
                    "ssl_epochs": 200,
                    "ssl_lr": 1e-3,
                    "ssl_batch_size": 256,
                },
                # The brief's VGG16 (138 M parameters) is larger than the ResNet-50 teacher (25 M): not a student.
                "03_knowledge_distillation": {
                    "teacher_epochs": 60,
                    "teacher_lr": 3e-4,
                    "students": ["resnet18", "mobilenetv3_small_100"],
                    "label_budgets": [0.1, 1.0],
                    "student_epochs": 60,
                    "temperatures": [1.0, 3.0, 5.0],
                    "cam_strides": [16, 32],
                },
                # The published setting: SGD 1e-2, batch 8, 60 epochs, IoU (Jaccard) loss; encoder = notebook 02's.
                "04_segmentation_augmentation": {
                    "seg_encoder": "resnet50",
                    "seg_epochs": 60,
                    "seg_lr": 1e-2,
                    "seg_optimizer": "sgd",
                    "seg_loss": "jaccard",
                    "seg_seeds": [0, 1, 2],
                    "arch_comparison_rows": None,  # every architecture trains every row
                },
                # The brief's lung-STAS ensemble: DeepLabV3+ with three timm encoders, trained here from scratch.
                "05_ensembling": {
                    "ensemble_members": [
                        "deeplabv3plus/tf_efficientnet_b6",
                        "deeplabv3plus/tf_efficientnetv2_m",
                        "deeplabv3plus/eca_nfnet_l2",
                    ]
                },
                "06_openvino_deployment": {
                    "calibration_frames": 300,
                    "bench_repeats": 100,
                    "async_frames": 500,
                    "benchmark_app_seconds": 10,
                    "serve_seconds": 5,
                },
            }
        ),
    ),
}


def get_profile(name: str) -> Profile:
    """Look a profile up by name, with an error that lists the valid ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}") from None
