import numpy as np
import pandas as pd
import pytest

import cflearn
from cflearn.data._splits import cold_split, leave_last_n, random_split, time_split


def _check_partition(tr, va, n):
    assert len(np.intersect1d(tr, va)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(n))


def test_random_split_disjoint_complete_seeded():
    tr, va = random_split(1000, 0.2, seed=1)
    _check_partition(tr, va, 1000)
    assert len(va) == 200
    tr2, va2 = random_split(1000, 0.2, seed=1)
    assert np.array_equal(va, va2)
    assert not np.array_equal(va, random_split(1000, 0.2, seed=2)[1])


def test_time_split_holds_out_latest():
    ts = np.array([5, 1, 9, 3, 7, 2, 8, 6, 4, 0])
    tr, va = time_split(ts, 0.3)
    _check_partition(tr, va, 10)
    assert sorted(ts[va]) == [7, 8, 9]
    assert ts[tr].max() < ts[va].min()


def test_leave_last_n_per_user():
    users = np.array([1, 1, 1, 2, 2, 3])
    ts = np.array([10, 30, 20, 5, 1, 7])
    tr, va = leave_last_n(users, ts, n=1)
    _check_partition(tr, va, 6)
    assert sorted(va.tolist()) == [1, 3]  # user 1's t=30, user 2's t=5; user 3 has one rating: stays in train


@pytest.mark.parametrize("col", ["user", "item"])
def test_cold_splits_hold_out_whole_users_or_items(synth, col):
    how = "cold_users" if col == "user" else "cold_items"
    data = cflearn.from_df(synth, split=how, valid_pct=0.25, seed=3)
    _check_partition(data.train_idx, data.valid_idx, len(data.ratings))
    train_keys = set(data.train[col])
    assert not train_keys & set(data.valid[col])
    assert data.cold["rows"] == len(data.valid_idx)
    again = cflearn.from_df(synth, split=how, valid_pct=0.25, seed=3)
    assert np.array_equal(again.valid_idx, data.valid_idx)


def test_cold_split_direct():
    keys = pd.Series(["a", "b", "a", "c", "b", "d"])
    tr, va = cold_split(keys, 0.5, seed=0)
    _check_partition(tr, va, 6)
    assert not set(keys[tr]) & set(keys[va])


def test_bad_split_options():
    with pytest.raises(cflearn.ConfigError, match="valid_pct"):
        random_split(10, 1.5)
    df = pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": [1.0, 2.0]})
    with pytest.raises(cflearn.ConfigError, match="timestamp"):
        cflearn.from_df(df, split="time")
    with pytest.raises(cflearn.ConfigError, match="unknown split"):
        cflearn.from_df(df, split="bogus")
