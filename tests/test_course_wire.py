"""The channel between a notebook's kernel and the checks: values come back exactly (types, dtypes,
labels, names), and anything that is not a value is refused or stands in as what it was, never
unpickled or evaluated."""

from __future__ import annotations

import base64
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from cflearn.course._differential import same_value
from cflearn.course._question import PLACEHOLDER
from cflearn.course._remote import Answers, Local, Model, Raised, Remote
from cflearn.course._wire import Opaque, WireError, decode, encode


def _through(value):
    return decode(json.loads(json.dumps(encode(value))))


VALUES = [
    None, True, 3, -2**70, 2.5, float("nan"), float("-inf"), "text", [1, "a", None], (1, (2, 3)), {1, 2},
    frozenset({"x"}), {1: "a", (2, 3): [4.0]}, np.int64(7), np.float32(0.25), np.bool_(True),
    np.arange(6, dtype=np.int32).reshape(2, 3), np.array(["a", None, 3], dtype=object), np.array([], dtype=float),
    torch.tensor([[0.5, -1.0]]), torch.arange(4), torch.tensor([True, False]),
    pd.Series([1.5, 2.5], index=["m2", "m1"], name="score"), pd.Series(["a", "b"], index=[10, 3]),
    pd.Series([1, None], dtype="Int64"),
    pd.DataFrame({"user": [1, 2], "rating": [4.5, 3.0], "title": ["A", "B"]}, index=[7, 3]),
    pd.DataFrame({"t": pd.to_datetime(["2020-01-01", "2021-06-30"])}), pd.DataFrame(index=[1, 2]),
    pd.Index([3, 1], name="movieId"), pd.RangeIndex(3), pd.DatetimeIndex(["2020-01-01"]),
    pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["u", "i"]),
    pd.Series([1.0], index=pd.DatetimeIndex(["2020-01-01"], tz="UTC")),
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(k) for k, v in enumerate(VALUES)])
def test_values_come_back_exactly(value):
    back = _through(value)
    assert type(back) is type(value) or isinstance(value, pd.RangeIndex) and type(back) is pd.Index
    if isinstance(value, float) and value != value:
        assert back != back
    elif isinstance(value, np.ndarray) and value.dtype == object:
        assert back.dtype == object and back.tolist() == value.tolist()
    elif isinstance(value, (pd.Series, pd.DataFrame, pd.Index)):
        assert value.equals(back) and value.index.equals(back.index) if not isinstance(value, pd.Index) else True
        assert (list(value.dtypes) if isinstance(value, pd.DataFrame) else [value.dtype]) == \
               (list(back.dtypes) if isinstance(back, pd.DataFrame) else [back.dtype])
        assert getattr(value, "name", None) == getattr(back, "name", None)
    else:
        assert same_value(back, value)


def test_what_does_not_travel_stands_in_for_itself():
    back = _through([object, iter([1, 2]), {"a": 1}.keys(), range(2)])
    assert isinstance(back[0], Opaque) and back[0].type_name == "type"
    assert [(b.type_name, list(b)) for b in back[1:]] == [("list_iterator", [1, 2]), ("dict_keys", ["a"]),
                                                            ("range", [0, 1])]
    assert _through(PLACEHOLDER) is PLACEHOLDER
    assert _through(torch.tensor([1.0], requires_grad=True)).requires_grad


@pytest.mark.parametrize("data", [
    {"$": "array", "dtype": "|O", "shape": [1], "b64": base64.b64encode(pickle.dumps([1])).decode()},
    {"$": "array", "dtype": "<f8", "shape": [3], "b64": base64.b64encode(b"\0" * 8).decode()},
    {"$": "pickle", "v": base64.b64encode(pickle.dumps(1)).decode()},
    {"$": "dict", "v": [[[1], 2]]},  # a list cannot be a key
    {"not": "a value"},
    {"$": "series", "a": {"dtype": None, "a": {"$": "array", "dtype": "<f8", "shape": [1],
                                                "b64": base64.b64encode(b"\0" * 8).decode()}},
     "index": {"$": "index", "a": {"dtype": None, "a": {"$": "array", "dtype": "<i8", "shape": [2],
                                                         "b64": base64.b64encode(b"\0" * 16).decode()}}}},
])
def test_anything_else_is_refused(data):
    with pytest.raises(WireError):
        decode(data)


class _Pair(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = torch.nn.Linear(n, 1)

    def forward(self, users, items):
        return self.lin(users * items)


def test_a_notebook_answer_is_called_on_copies_and_its_changes_are_seen():
    ns = {"f": lambda df: df.drop(columns="b", inplace=True), "x": 3, "Model": _Pair}
    answers = Answers(Local(ns))
    f = answers.get("f")
    assert isinstance(f, Remote) and answers.get("x") == 3 and answers.get("missing") is PLACEHOLDER
    df = pd.DataFrame({"a": [1], "b": [2]})
    assert f(df) is None and list(df.columns) == ["a", "b"]  # the caller's object is never touched
    assert list(f.last_args[0].columns) == ["a"]  # what the answer did to its copy
    state = torch.random.get_rng_state()
    model = answers.get("Model")(3)
    assert torch.equal(state, torch.random.get_rng_state())  # a check leaves the notebook's generator as it was
    assert isinstance(model, Model) and [layer.shape for layer in model.linears()] == [(1, 3)]
    run = model.run({0: (torch.ones(1, 3), torch.zeros(1))}, torch.eye(3), torch.eye(3), target=torch.zeros(3))
    assert run.grads[0] is not None and tuple(run.grads[0].shape) == (1, 3)
    with pytest.raises(Raised) as e:
        model.run({}, torch.ones(2, 5), torch.ones(2, 5), watch=0)  # Linear(3, 1) on rows of 5
    assert e.value.kind == "RuntimeError" and e.value.widths == [5]
