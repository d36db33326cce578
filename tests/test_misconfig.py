"""No silent misconfiguration: every setting that does not apply is an error or a warning naming the fix."""

from __future__ import annotations

import warnings

import pytest

import cflearn


def test_unknown_option_suggests_the_closest(synth_data):
    with pytest.raises(cflearn.ConfigError, match="unknown option 'n_factor' \\(did you mean 'n_factors'\\?\\)"):
        cflearn.collab_learner(synth_data, n_factor=32)
    with pytest.raises(cflearn.ConfigError, match="unknown option 'wieght_decay'"):
        cflearn.collab_learner(synth_data, wieght_decay=0.1)


def test_emb_szs_and_layers_only_apply_to_nn(synth_data):
    with pytest.raises(cflearn.ConfigError, match="emb_szs only applies to NN models \\(use_nn=True\\).*n_factors"):
        cflearn.collab_learner(synth_data, "fast", emb_szs={"user": 8, "item": 8})
    with pytest.raises(cflearn.ConfigError, match="layers only applies to NN models"):
        cflearn.collab_learner(synth_data, "book", layers=[32])
    with pytest.raises(cflearn.ColumnError, match="emb_szs key 'users' is not the user or item column "
                                                  "\\(did you mean 'user'\\?\\)"):
        cflearn.collab_learner(synth_data, "fast_nn", emb_szs={"users": 8})
    learn = cflearn.collab_learner(synth_data, "fast_nn", emb_szs={"user": 8}, progress=False)
    assert learn.model.embeds[0].embedding_dim == 8


def test_item_features_typo_and_missing_table(synth, synth_data):
    with pytest.raises(cflearn.ColumnError, match="'genre' in the items table \\(did you mean 'genres'\\?\\)"):
        cflearn.from_df(synth, item_features=["genre"])
    plain = cflearn.from_df(synth.ratings, "user", "item", "rating")
    with pytest.raises(cflearn.ConfigError, match="need an items table: pass items=... to cflearn.from_df"):
        cflearn.from_df(synth.ratings, "user", "item", "rating", item_features=["genres"])
    with pytest.warns(UserWarning, match="training with no item features"):
        learn = cflearn.collab_learner(plain, "best", progress=False)
    assert learn.cf.preset.item_features == ()


def test_nn_on_best_would_drop_the_genres(synth_data):
    with pytest.raises(cflearn.ConfigError, match="NN model takes no side features.*best_nn"):
        cflearn.collab_learner(synth_data, "best", use_nn=True)


@pytest.mark.parametrize("y_range, message", [
    ((0, 1), "y_range \\(0, 1\\) does not cover the ratings 1-5; use \\(0.5, 5.5\\)"),
    ((0, 5.5, 6), "y_range must be two numbers"),
    (("low", "high"), "y_range must be two numbers"),
    ((5.5, 0), "low < high"),
])
def test_bad_y_range(synth_data, y_range, message):
    with pytest.raises(cflearn.ConfigError, match=message):
        cflearn.collab_learner(synth_data, y_range=y_range)


def test_y_range_without_padding_warns(synth_data):
    lo, hi = synth_data.scale
    with pytest.warns(UserWarning, match="a sigmoid never reaches its ends"):
        cflearn.collab_learner(synth_data, y_range=(lo, hi), progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 2.5}, "epochs must be a positive integer, got 2.5"),
    ({"bs": 0}, "bs must be a positive integer"),
    ({"lr": -1.0}, "lr must be a positive number"),
    ({"wd": float("nan")}, "wd must be a non-negative number"),
    ({"seed": -3}, "seed must be an integer from 0"),
])
def test_bad_numbers(synth_data, kwargs, message):
    with pytest.raises(cflearn.ConfigError, match=message):
        cflearn.collab_learner(synth_data, **kwargs)


def test_fit_with_zero_epochs_is_refused_not_ignored(synth_data):
    learn = cflearn.collab_learner(synth_data, progress=False)
    with pytest.raises(cflearn.ConfigError, match="epochs must be a positive integer, got 0"):
        cflearn.fit(learn, epochs=0)


def test_the_books_fit_line_on_a_fast_preset_says_once_what_the_preset_uses(synth_data):
    learn = cflearn.collab_learner(synth_data, "fast", progress=False)
    with pytest.warns(UserWarning, match=r"preset 'fast' is tuned for lr=0.03, wd=0.*this fit uses wd=0.1, "
                                         r"lr=0.005.*cflearn.fit\(learn\)"):
        learn.fit_one_cycle(1, 5e-3, wd=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only; cflearn.fit and the preset's own settings say nothing
        learn.fit_one_cycle(1, 5e-3, wd=0.1)
        fresh = cflearn.collab_learner(synth_data, "fast", epochs=1, progress=False)
        cflearn.fit(fresh)
        fresh.fit_one_cycle(1, 3e-2, wd=0.0)
        book = cflearn.collab_learner(synth_data, "book", progress=False)
        book.fit_one_cycle(1, 5e-3, wd=0.1)
