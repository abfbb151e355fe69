"""Voting rules on hand-made arrays: odd and even numbers of models, and every tie rule."""

import numpy as np
import pytest

from helpers import ensemble


def test_soft_vote_is_the_mean_probability():
    p = np.array([[0.2, 0.9], [0.4, 0.3], [0.9, 0.3]])
    assert ensemble.soft_vote(p) == pytest.approx([0.5, 0.5])


def test_hard_vote_odd_number_of_models_is_a_plain_majority():
    m = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 0]], bool)
    assert ensemble.hard_vote(m).tolist() == [True, False, True, False]


def test_hard_vote_ties_go_to_background_or_to_the_mean_probability():
    m = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)  # pixels 0, 2, 3 tie at one vote each
    assert ensemble.hard_vote(m).tolist() == [False, True, False, False]
    p = np.array([[0.9, 0.8, 0.1, 0.6], [0.2, 0.7, 0.8, 0.3]])  # means 0.55, 0.75, 0.45, 0.45
    assert ensemble.hard_vote(m, p).tolist() == [True, True, False, False]
    four = np.array([[1, 1], [1, 0], [0, 1], [1, 0]], bool)  # 3 of 4 votes, then 2 of 4
    assert ensemble.hard_vote(four).tolist() == [True, False]


def test_majority_class_with_and_without_ties():
    preds = np.array([[0, 2, 1], [0, 1, 1], [2, 1, 0]])  # 3 models, 3 samples
    assert ensemble.majority_class(preds, 3).tolist() == [0, 1, 1]
    even = np.array([[0, 2], [1, 2]])  # sample 0 ties between classes 0 and 1
    assert ensemble.majority_class(even, 3).tolist() == [0, 2]  # lowest index without probabilities
    probas = np.array([[[0.5, 0.4, 0.1], [0, 0, 1]], [[0.2, 0.7, 0.1], [0, 0, 1]]])  # class 1 has the higher mean
    assert ensemble.majority_class(even, 3, probas).tolist() == [1, 2]


def test_flip_tta_averages_the_flipped_predictions_back():
    images = np.zeros((1, 2, 3, 3), np.uint8)
    images[0, 0, 0] = 255  # one bright corner pixel
    bright = lambda x: (x[..., 0] > 0).astype(float)  # flip-equivariant: TTA changes nothing
    assert np.array_equal(ensemble.flip_tta(bright, images), bright(images))
    ramp = lambda x: np.broadcast_to(np.arange(3.0), x.shape[:3])  # ignores the image: column index
    # identity 0,1,2; h-flip back 2,1,0; v-flip back 0,1,2 -> mean 2/3, 1, 4/3
    assert ensemble.flip_tta(ramp, images)[0, 0] == pytest.approx([2 / 3, 1, 4 / 3])


def test_rescued_finds_where_the_vote_fixes_a_failing_member():
    members = np.array([[0.9, 0.2, 0.8, 0.1], [0.8, 0.9, 0.3, 0.2], [0.9, 0.8, 0.9, 0.3]])
    vote = np.array([0.9, 0.85, 0.6, 0.2])
    assert ensemble.rescued(members, vote).tolist() == [1, 2]  # sample 3: everyone fails, no rescue


def test_vote_masks_name_the_rule_and_the_number_of_models():
    probas = {"a": np.array([[0.9, 0.1]]), "b": np.array([[0.6, 0.45]]), "c": np.array([[0.2, 0.6]])}
    votes = ensemble.vote_masks(probas, " + flip TTA")
    assert votes["soft vote (3) + flip TTA"].tolist() == [[True, False]]  # means 0.567, 0.383
    assert votes["hard vote (3) + flip TTA"].tolist() == [[True, False]]  # votes 2 of 3, 1 of 3


def test_member_configs_take_notebook_04s_best_row_per_decoder():
    index = {"best": "k", "checkpoints": {"k": {"augmentation": "geometric"}}, "best_rows": {"unet": "+ blur"}}
    configs = ensemble.member_configs(["unet/resnet18", "fpn/resnet34"], index)
    assert [(c["arch"], c["encoder"], c["augmentation"]) for c in configs] == [
        ("unet", "resnet18", "+ blur"),
        ("fpn", "resnet34", "geometric"),  # not trained by 04: the overall best row
    ]
    with pytest.raises(ValueError, match="<decoder>/<timm encoder>"):
        ensemble.member_configs(["resnet18"], index)


def _summary(rows):
    import pandas as pd

    cols = ["model", "kind", "test_dice_mean", "test_dice_std", "val_dice_mean", "ms_per_frame"]
    return pd.DataFrame(rows, columns=cols)


def test_segmentation_verdicts_pick_on_validation_and_judge_against_the_seed_spread():
    summary = _summary(
        [
            ["a", "member", 0.80, 0.01, 0.79, 2.0],
            ["b", "member", 0.85, 0.01, 0.70, 2.0],  # best on test, but not on validation: not the baseline
            ["soft vote (2)", "vote", 0.83, 0.01, 0.81, 5.0],
            ["hard vote (2)", "vote", 0.805, 0.02, 0.78, 5.0],
        ]
    )
    verdicts, best = ensemble.segmentation_verdicts(summary, 2)
    assert best == "a" and [v["ensemble"] for v in verdicts] == ["soft vote (2)", "hard vote (2)"]
    assert verdicts[0]["outcome"] == "better" and verdicts[0]["cost_ratio"] == pytest.approx(2.5)
    assert verdicts[1]["outcome"] == "tie_above" and "within the spread over seeds" in verdicts[1]["text"]


def test_classification_verdict_states_what_its_spread_is():
    import pandas as pd

    summary = pd.DataFrame(
        {
            "model": ["s1", "s2", "soft vote: all"],
            "kind": ["member", "member", "vote"],
            "macro_f1": [0.70, 0.75, 0.72],
            "val_macro_f1": [0.8, 0.6, 0.9],
        }
    )
    verdict = ensemble.classification_verdict(summary, n_test=60)  # noise: 3 of 60 frames = 0.05
    assert verdict["best_member"] == "s1" and verdict["best_vote"] == "soft vote: all"
    assert verdict["outcome"] == "tie_above" and "within the spread of three test frames" in verdict["text"]


def test_frame_rescues_count_rescued_and_broken_frames():
    masks = np.zeros((3, 4, 4), bool)
    masks[:, :2, :2] = True
    right, wrong = masks.copy(), np.zeros_like(masks)
    predicted = {
        "m1": np.stack([right[0], wrong[1], right[2]]),
        "m2": np.stack([right[0], right[1], wrong[2]]),
        "m3": np.stack([wrong[0], right[1], wrong[2]]),
    }
    predicted["hard vote (3)"] = np.stack([right[0], right[1], wrong[2]])
    found = ensemble.frame_rescues(predicted, masks, ["m1", "m2", "m3"], "m1", 0.5)
    assert found["rescued"].tolist() == [0, 1] and found["broken"].tolist() == [2]
    assert found["vs_best"] == {"better": 1, "worse": 1}
