import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cflearn import Vocab

ids_strategy = st.one_of(
    st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=1, max_size=60),
    st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=60),
)


@settings(max_examples=150, deadline=None)
@given(ids_strategy)
def test_round_trip_raw_index_raw(ids):
    v = Vocab(ids)
    idx = v.encode(ids)
    assert (idx >= 1).all() and (idx < len(v)).all()
    assert list(v.decode(idx)) == list(ids)
    assert len(v) == len(set(ids)) + 1
    # indices are contiguous 1..n and sorted like fastai's Categorify
    assert sorted(set(idx.tolist())) == list(range(1, len(v)))
    assert list(v.ids) == sorted(set(ids))


@settings(max_examples=60, deadline=None)
@given(ids_strategy)
def test_json_round_trip_keeps_order_and_types(ids):
    v = Vocab(ids)
    back = Vocab.from_list(v.to_list())
    assert back == v
    assert [type(x) for x in back.to_list()] == [type(x) for x in v.to_list()]


def test_unknown_ids_map_to_zero_and_decode_to_na():
    v = Vocab([10, 30, 20])
    assert v.encode([20, 99, 10]).tolist() == [2, 0, 1]
    assert v.known([20, 99]).tolist() == [True, False]
    assert v.decode([0, 3]).tolist() == ["#na#", 30]
    assert v.itos == ["#na#", 10, 20, 30]
    with pytest.raises(IndexError):
        v.decode([4])


def test_large_and_string_ids():
    big = [2**62, 2**62 + 1, 7]
    v = Vocab(big)
    assert v.decode(v.encode(big)).tolist() == big
    s = Vocab(pd.Series(["b", "a", "c"]))
    assert s.encode(np.array(["c", "zz"])).tolist() == [3, 0]
