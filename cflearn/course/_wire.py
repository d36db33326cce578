"""The narrow channel between a notebook's kernel and the checks: values as JSON, never pickles.

What an answer returns and what it is given travel as JSON with typed tags for what JSON lacks
(tuples, sets, dicts with any keys, NumPy scalars and arrays, tensors, pandas Series, DataFrames,
indexes, timestamps and ``pd.NA``; a range, a dict's keys or a generator as the items it gives).
Arrays go as base64 of their bytes with their dtype, so a value comes back with its exact dtype,
shape, labels and name. Decoding only ever builds these types: anything else the kernel sends is
an :class:`Opaque` stand-in that says what it was, and nothing is unpickled or evaluated.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pandas as pd

from ._placeholder import PLACEHOLDER, is_placeholder

__all__ = ["encode", "decode", "Opaque", "Iterable", "WireError", "MAX_DEPTH", "MAX_ITEMS"]

MAX_DEPTH = 40
"""The deepest nesting of containers that travels (deeper is :class:`WireError`)."""


class WireError(ValueError):
    """A message that is not a value this channel carries."""


class Opaque:
    """What an answer returned that does not travel (a generator, an object of its own class...):
    its type's name and a short text, for the message that says it is the wrong kind of value."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and (self.type_name, self.text) == (other.type_name, other.text)

    __hash__ = None  # type: ignore[assignment]


def encode(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data (:func:`decode` gives it back)."""
    if depth > MAX_DEPTH:
        raise WireError(f"a value nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)) or type(value) is int:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else {"$": "float", "v": repr(value)}
    if is_placeholder(value):
        return {"$": "placeholder"}
    if value is pd.NA or value is pd.NaT:
        return {"$": "na" if value is pd.NA else "nat"}
    if isinstance(value, pd.Timestamp):
        return {"$": "timestamp", "v": int(value.value), "tz": None if value.tz is None else str(value.tz)}
    if isinstance(value, pd.Timedelta):
        return {"$": "timedelta", "v": int(value.value)}
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"$": "scalar", "a": _array(np.asarray(value))}
    if isinstance(value, list):
        return [encode(v, depth + 1) for v in value]
    if isinstance(value, (tuple, set, frozenset)):  # a namedtuple as a tuple, a subclass as its base
        kind = "tuple" if isinstance(value, tuple) else "frozenset" if isinstance(value, frozenset) else "set"
        return {"$": kind, "v": [encode(v, depth + 1) for v in value]}
    if isinstance(value, dict):  # a defaultdict or an OrderedDict as a dict
        return {"$": "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, np.ndarray) and type(value) is np.ndarray:
        return _array(value, depth)
    if isinstance(value, pd.MultiIndex):
        return {"$": "multiindex", "v": encode(list(value), depth + 1), "names": encode(list(value.names), depth + 1)}
    if isinstance(value, pd.Index):  # a RangeIndex as the integers it holds; dates, categories... as they are
        return {"$": "index", "a": _values(value), "name": encode(value.name, depth + 1)}
    if type(value) is pd.Series:
        return {"$": "series", "a": _values(value), "index": encode(value.index, depth + 1),
                "name": encode(value.name, depth + 1)}
    if type(value) is pd.DataFrame:
        return {"$": "frame", "columns": encode(value.columns, depth + 1), "index": encode(value.index, depth + 1),
                "v": [_values(value.iloc[:, k]) for k in range(value.shape[1])]}
    torch = _torch()
    if torch is not None and type(value) in (torch.Tensor, torch.nn.Parameter):
        t = value.detach().cpu()
        return {"$": "tensor", "a": _array(t.numpy() if t.dtype != torch.bfloat16 else t.float().numpy()),
                "dtype": str(t.dtype).removeprefix("torch."), "grad": bool(value.requires_grad)}
    if isinstance(value, _ITERABLES) or (hasattr(value, "__next__") and hasattr(value, "__iter__")):
        items: list[Any] = []  # a range, a dict's keys, a map or a generator: what iterating it gives, up to a limit
        for item in value:
            if len(items) == MAX_ITEMS:
                break
            items.append(encode(item, depth + 1))
        return {"$": "iterable", "type": type(value).__name__[:100], "v": items}
    return opaque(value)


_ITERABLES: tuple[type, ...] = (range, type({}.keys()), type({}.values()), type({}.items()))
MAX_ITEMS = 10**6


class Iterable:
    """What an answer returned that is iterable but not a list or a tuple (a range, a dict's keys, a
    generator...): its items, in order, under its own type's name."""

    def __init__(self, type_name: str, items: list[Any]) -> None:
        self.type_name, self.items = type_name, items

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"{self.type_name}({self.items!r})"


def opaque(value: Any) -> dict[str, Any]:
    """The stand-in for a value that does not travel."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001  (a student's __repr__ may raise)
        text = f"<{type(value).__name__} object>"
    return {"$": "opaque", "type": type(value).__name__[:100], "text": text[:300]}


def _values(values: Any) -> dict[str, Any]:
    """A Series' or an index's values with their pandas dtype (NumPy or an extension dtype)."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype):
        return {"dtype": None, "a": _array(np.asarray(values))}
    return {"dtype": str(dtype), "a": _array(np.asarray(values, dtype=object))}


def _array(a: np.ndarray, depth: int = 0) -> dict[str, Any]:
    if a.dtype.hasobject:
        return {"$": "objects", "shape": list(a.shape), "v": [encode(v, depth + 1) for v in a.reshape(-1).tolist()]}
    return {"$": "array", "dtype": a.dtype.str, "shape": list(a.shape),
            "b64": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}


def decode(data: Any, depth: int = 0) -> Any:
    """The value :func:`encode` made ``data`` from; :class:`WireError` for anything else."""
    if depth > MAX_DEPTH:
        raise WireError(f"a value nested deeper than {MAX_DEPTH}")
    if data is None or isinstance(data, (bool, str, int, float)):
        return data
    if isinstance(data, list):
        return [decode(v, depth + 1) for v in data]
    if not isinstance(data, dict) or not isinstance(data.get("$"), str):
        raise WireError(f"not a value: {str(data)[:80]}")
    tag = data["$"]
    if tag == "float":
        return float(_field(data, "v", str))
    if tag in ("na", "nat"):
        return pd.NA if tag == "na" else pd.NaT
    if tag == "timestamp":
        tz = data.get("tz")
        try:
            return pd.Timestamp(_field(data, "v", int), tz=str(tz) if tz is not None else None)
        except (TypeError, ValueError, KeyError) as e:
            raise WireError(f"a timestamp that cannot be read ({e})") from None
    if tag == "timedelta":
        return pd.Timedelta(_field(data, "v", int))
    if tag == "placeholder":
        return PLACEHOLDER
    if tag == "scalar":
        a = decode(_field(data, "a", dict), depth + 1)
        return a.reshape(())[()] if isinstance(a, np.ndarray) else a
    if tag in ("tuple", "set", "frozenset"):
        items = [decode(v, depth + 1) for v in _field(data, "v", list)]
        try:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        except TypeError as e:
            raise WireError(f"a {tag} of values that cannot be in one ({e})") from None
    if tag == "dict":
        out = {}
        for pair in _field(data, "v", list):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise WireError("a dict entry that is not a pair")
            try:
                out[decode(pair[0], depth + 1)] = decode(pair[1], depth + 1)
            except TypeError as e:
                raise WireError(f"a dict key that cannot be a key ({e})") from None
        return out
    if tag in ("array", "objects"):
        return _from_array(data, depth)
    if tag == "iterable":
        return Iterable(str(_field(data, "type", str))[:100], [decode(v, depth + 1) for v in _field(data, "v", list)])
    if tag == "multiindex":
        rows, names = decode(_field(data, "v", list), depth + 1), decode(_field(data, "names", list), depth + 1)
        try:
            return pd.MultiIndex.from_tuples([tuple(r) for r in rows], names=names)
        except (TypeError, ValueError) as e:
            raise WireError(f"a MultiIndex that cannot be built ({e})") from None
    if tag == "index":
        return pd.Index(_from_values(_field(data, "a", dict), depth), name=decode(data.get("name"), depth + 1),
                        tupleize_cols=False)
    if tag == "series":
        index = decode(_field(data, "index", dict), depth + 1)
        values = _from_values(_field(data, "a", dict), depth)
        if not isinstance(index, pd.Index) or len(index) != len(values):
            raise WireError("a Series whose index does not fit its values")
        return pd.Series(values, index=index, name=decode(data.get("name"), depth + 1), copy=False)
    if tag == "frame":
        columns = decode(_field(data, "columns", dict), depth + 1)
        index = decode(_field(data, "index", dict), depth + 1)
        cols = [_from_values(v, depth) for v in _field(data, "v", list)]
        if not (isinstance(columns, pd.Index) and isinstance(index, pd.Index) and len(columns) == len(cols)
                and all(len(c) == len(index) for c in cols)):
            raise WireError("a DataFrame whose columns do not fit its values")
        frame = pd.DataFrame({k: pd.Series(c, index=index, copy=False) for k, c in enumerate(cols)}, index=index)
        frame.columns = columns
        return frame
    if tag == "tensor":
        import torch

        a = _from_array(_field(data, "a", dict), depth)
        dtype = getattr(torch, str(_field(data, "dtype", str)), None)
        if not isinstance(dtype, torch.dtype) or a.dtype.hasobject:
            raise WireError("a tensor of an unknown dtype")
        t = torch.from_numpy(a.copy()).to(dtype)
        return t.requires_grad_() if data.get("grad") is True and t.is_floating_point() else t
    if tag == "opaque":
        return Opaque(str(_field(data, "type", str))[:100], str(_field(data, "text", str))[:300])
    raise WireError(f"an unknown kind of value {tag[:40]!r}")


def _field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise WireError(f"a {data.get('$')!r} value without its {key!r}")
    return value


def _from_values(data: Any, depth: int) -> Any:
    if not isinstance(data, dict):
        raise WireError("values without their dtype")
    a = _from_array(_field(data, "a", dict), depth)
    dtype = data.get("dtype")
    if dtype is None:
        return a
    try:
        return pd.array(a, dtype=pd.api.types.pandas_dtype(str(dtype)))  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise WireError(f"values of an unknown dtype {str(dtype)[:40]!r} ({e})") from None


def _from_array(data: dict[str, Any], depth: int) -> np.ndarray:
    shape = _field(data, "shape", list)
    if not all(type(s) is int and 0 <= s for s in shape):
        raise WireError("an array with a shape that is not sizes")
    n = math.prod(shape)
    if data.get("$") == "objects":
        items = _field(data, "v", list)
        if len(items) != n:
            raise WireError("an array whose values do not fill its shape")
        out = np.empty(n, dtype=object)
        for k, v in enumerate(items):
            out[k] = decode(v, depth + 1)
        return out.reshape(shape)
    try:
        dtype = np.dtype(_field(data, "dtype", str))
    except TypeError:
        raise WireError("an array of an unknown dtype") from None
    if dtype.hasobject or dtype.fields is not None:
        raise WireError("an array of objects sent as bytes")
    raw = base64.b64decode(_field(data, "b64", str), validate=True)
    if len(raw) != n * dtype.itemsize:
        raise WireError("an array whose bytes do not fill its shape")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")
