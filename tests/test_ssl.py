"""SimCLR pieces that the notebook relies on."""

import numpy as np
import pandas as pd
import torch

from helpers import ssl


def test_views_differ_but_keep_shape():
    img = (np.random.default_rng(0).random((80, 90, 3)) * 255).astype(np.uint8)
    torch.manual_seed(0)
    views = ssl.simclr_views(32)
    a, b = views(img), views(img)
    assert a.shape == b.shape == (3, 32, 32) and not torch.equal(a, b)


def test_label_subset_is_stratified_and_keeps_every_class():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = ssl.label_subset(labels, 0.1, seed=0)
    assert len(idx) == 10 and set(labels[idx]) == {0, 1, 2}
    assert np.array_equal(ssl.label_subset(labels, 1.0, seed=0), np.arange(100))


def test_few_label_eval_separable_features_score_perfectly():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = np.eye(3)[y] * 5 + rng.normal(0, 0.1, (60, 3))
    res = ssl.few_label_eval(x, y, x, y, [0.25, 1.0], repeats=2, seed=0)
    assert len(res) == (2 + 1) * 2 and (res["macro_f1"] == 1.0).all()
    table = ssl.compare({"a": res})
    assert set(table["label_fraction"]) == {0.25, 1.0}


def test_one_pretraining_epoch_runs_and_updates_weights():
    images = (np.random.default_rng(1).random((8, 40, 40, 3)) * 255).astype(np.uint8)
    model = ssl.SimCLR("resnet18", projection_dim=16)
    before = model.head[0].weight.detach().clone()
    history = ssl.pretrain(model, images, 32, epochs=1, batch_size=4)
    assert len(history) == 1 and np.isfinite(history["loss"]).all()
    assert not torch.equal(before, model.head[0].weight)


def test_verdict_claims_a_gain_only_outside_the_spread():
    def draws(f1s):
        return pd.DataFrame(
            [
                {
                    "label_fraction": 0.1,
                    "labels": 30,
                    "draw": d,
                    "method": "linear probe",
                    "accuracy": 0.0,
                    "macro_f1": f1,
                }
                for d, f1 in enumerate(f1s)
            ]
        )

    def table(ssl_f1, ssl_std):
        return ssl.compare({"SimCLR": draws([ssl_f1 - ssl_std, ssl_f1 + ssl_std]), "random init": draws([0.5, 0.5])})

    assert ssl.verdict(table(0.7, 0.01))["outcome"] == "better"
    assert ssl.verdict(table(0.52, 0.1))["outcome"] == "tie_above"
    assert ssl.verdict(table(0.4, 0.01))["outcome"] == "worse"
    assert "**is better than** random initialisation" in ssl.verdict(table(0.7, 0.01))["text"]
    assert "within the spread over label draws" in ssl.verdict(table(0.52, 0.1))["verdict"]  # the one wording
