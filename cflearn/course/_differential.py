"""Differential checking: a student's answer and the reference run on many generated inputs.

The inputs come from a Hypothesis strategy, derandomized (the same verdict on every run) and
without an example database (nothing is written next to the notebook). The first disagreement
is shrunk to the smallest input Hypothesis finds, and the message shows that input and both
outputs. Every call also keeps the contract each answer owes its caller: the answer gets the real
input objects and must leave them as they were.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from ._question import NotAnswered, Wrong, first_line
from ._remote import ChannelDown, kind_of

__all__ = ["agree", "same_value", "show", "ranked_labels"]

Compare = Callable[[Any, Any, tuple[Any, ...]], "str | None"]
"""``compare(got, want, args)``: ``None`` when the answer's output ``got`` is right for ``args``
(``want`` is the reference's), else what is wrong, in words. It may raise :class:`Wrong`."""


def agree(call: str, fn: Callable[..., Any], reference: Callable[..., Any], inputs: Any, compare: Compare, *,
          examples: int = 150, names: tuple[str, ...] = (),
          describe: Callable[[tuple[Any, ...]], str] | None = None) -> None:
    """:class:`Wrong` unless ``fn`` agrees with ``reference`` on every input ``inputs`` generates.

    Args:
        call: how the call reads in a message, e.g. ``"precision_at_k"``.
        fn: the student's function.
        reference: the reference solution (given a deep copy of the same input).
        inputs: a Hypothesis strategy of argument tuples.
        compare: judges one output (see :data:`Compare`).
        examples: how many inputs to try when the answer agrees on all of them.
        names: the arguments' names, to say which input an answer changed.
        describe: how a failing input reads (default: the call with its arguments).
    """
    from hypothesis import HealthCheck, Phase, Verbosity, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    found: list[Any] = []

    def disagrees(args: tuple[Any, ...]) -> bool:
        pristine = copy.deepcopy(args)
        reason = _problem(call, fn, reference, args, pristine, compare, names)
        if reason is not None:
            found[:] = [pristine, reason]
        return reason is not None

    config = settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                      phases=(Phase.generate, Phase.shrink))
    try:
        with _no_local_constants():
            find(inputs, disagrees, settings=config)
    except (NoSuchExample, Unsatisfiable):  # no disagreement found (or no input drawn): never a false "wrong"
        return
    args, reason = found
    text = describe(args) if describe else f"{call}({', '.join(show(a) for a in args)})"
    raise Wrong(f"{reason}; the smallest such input found: {text}")


@contextmanager
def _no_local_constants() -> Iterator[None]:
    """Hypothesis draws some inputs from constants in the source of modules outside site-packages
    (cached under ``.hypothesis/`` in the working folder): then the inputs, and so a verdict, would
    depend on what else the notebook imported, and a folder would appear next to it. Generation
    here uses Hypothesis's own constants only."""
    from hypothesis.internal.conjecture import providers

    scan = getattr(providers, "_get_local_constants", None)
    if scan is None:  # a Hypothesis without local constants
        yield
        return
    providers._get_local_constants = providers.Constants  # type: ignore[attr-defined]
    try:
        yield
    finally:
        providers._get_local_constants = scan  # type: ignore[attr-defined]


def _problem(call: str, fn: Callable[..., Any], reference: Callable[..., Any], args: tuple[Any, ...],
             pristine: tuple[Any, ...], compare: Compare, names: tuple[str, ...]) -> str | None:
    try:
        with warnings.catch_warnings():  # the answer's own warnings, once per generated input, would flood the cell
            warnings.simplefilter("ignore")
            got = fn(*args)
    except (NotAnswered, ChannelDown):
        raise
    except Exception as e:  # the student's code failing on a generated input is a wrong answer
        return f"on a generated input your {call} raised {kind_of(e)}: {first_line(e)}"
    after = getattr(fn, "last_args", None) or args  # an answer in the notebook: its inputs as they were after
    for k, (now, before) in enumerate(zip(after, pristine)):
        if not same_value(now, before):
            what = f"`{names[k]}`" if k < len(names) else f"argument {k + 1}"
            return (f"your {call} changes its input {what}: work on a copy (`.copy()`, `.clone()` for a tensor) or "
                    "with operations that return a new object, so that the caller's data stays as it was")
    want = reference(*copy.deepcopy(pristine))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compare(got, want, pristine)
    except Wrong as e:
        return str(e)
    except (NotAnswered, ChannelDown):
        raise
    except Exception as e:  # compare runs what the answer built (a model's forward, say)
        return f"on a generated input your {call} raised {kind_of(e)}: {first_line(e)}"


def ranked_labels(got: Any, call: str, index: Any, n: int, what: str) -> list[Any]:
    """A student's list of ``n`` labels of ``index`` (the IDs a ranking question returns), as plain
    values; :class:`Wrong` for anything else: not a list, too few or too many, repeats, or values that
    are not the index's labels as they are there (``5.0`` for the ID ``5``, ``'5'`` for ``5``)."""
    from ._question import id_list, plain

    ids = id_list(got, f"your {call} returned {got!r}, not a list of item IDs")
    kind = {plain(i): type(plain(i)) for i in index}
    if len(ids) != n or len(set(ids)) != n:
        raise Wrong(f"your {call} returned {ids}; it should list {n} different item IDs")
    if any(i not in kind or type(i) is not kind[i] for i in ids):
        raise Wrong(f"your {call} returned {ids}; return {what}, as they are there")
    return ids


def same_value(a: Any, b: Any) -> bool:
    """Whether ``a`` still equals ``b`` exactly: values, labels, dtypes and shapes."""
    import torch

    if type(a) is not type(b):
        return False
    if isinstance(a, (pd.DataFrame, pd.Series)):
        return bool(a.equals(b) and a.index.equals(b.index) and a.index.dtype == b.index.dtype
                    and (a.columns.equals(b.columns) if isinstance(a, pd.DataFrame) else a.name == b.name)
                    and (list(a.dtypes) == list(b.dtypes) if isinstance(a, pd.DataFrame) else a.dtype == b.dtype))
    if isinstance(a, torch.Tensor):
        return bool(a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, np.ndarray):
        return bool(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a and b != b:  # NaN is still NaN
        return True
    return bool(a == b)


def show(value: Any, width: int = 400) -> str:
    """A short text of an input or output for a message (a table as rows, a tensor as a nested list)."""
    import torch

    if isinstance(value, pd.DataFrame):
        rows = [tuple(r) for r in value.itertuples(index=False)]
        text = f"DataFrame({rows}, columns={value.columns.tolist()}, index={value.index.tolist()})"
    elif isinstance(value, pd.Series):
        text = f"Series({value.tolist()}, index={value.index.tolist()})"
    elif isinstance(value, torch.Tensor):
        text = f"tensor({_rounded(value.detach().cpu().numpy())})"
    elif isinstance(value, np.ndarray):
        text = f"np.array({_rounded(value)})"
    else:
        text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _rounded(a: np.ndarray) -> Any:
    return a.round(4).tolist() if np.issubdtype(a.dtype, np.floating) else a.tolist()
