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
