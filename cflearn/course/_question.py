"""Self-checking questions in the pattern of Kaggle Learn's learntools: ``q1.check()``,
``q1.hint()`` and ``q1.solution()`` in a notebook whose setup cell bound the questions."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ._placeholder import PLACEHOLDER, is_placeholder
from ._remote import Answers, ChannelDown, Local, Model, kind_of, type_name

__all__ = ["PLACEHOLDER", "is_placeholder", "Question", "Result", "NotAnswered", "Wrong", "plain", "close",
           "require_init", "per_row", "diagnose", "known", "squash", "squash_mistakes", "first_line", "number",
           "id_list"]


class NotAnswered(Exception):
    """The question's answer is still the placeholder (or not defined)."""


class Wrong(Exception):
    """The answer is defined but wrong; the message says what is wrong, kindly."""


Status = Literal["correct", "incorrect", "not answered"]


@dataclass(frozen=True)
class Result:
    """The outcome of one check: ``status`` and the message shown to the student."""

    question: str
    status: Status
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        mark = {"correct": "Correct", "incorrect": "Incorrect", "not answered": "Not answered yet"}[self.status]
        return f"{self.question} - {mark}: {self.message}"


class Question:
    """One question, bound to the namespace (the notebook's ``globals()``) that holds the answer.

    Subclasses set ``title``, ``names`` (the variables the student defines), ``hint_text`` (a
    nudge, ``q.hint()``) and ``hint_more`` (closer to the answer, ``q.hint(2)``), and implement
    :meth:`verify`, which raises :class:`Wrong` with a specific message or returns a
    short confirmation. The reference solution is the question's ``### BEGIN SOLUTION`` block in
    the exercise notebook (one source for the student's notebook and :meth:`solution`).
    ``wrong`` lists typical wrong answers as edits of that solution, ``(old, new, words)``: the
    solution with ``old`` replaced by ``new`` (or ``new`` alone when ``old`` is empty) must fail
    with a message containing ``words``. The test suite runs them; instructors can read them.
    """

    title: ClassVar[str] = ""
    names: ClassVar[tuple[str, ...]] = ()
    hint_text: ClassVar[str] = ""
    hint_more: ClassVar[str] = ""
    wrong: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def __init__(self, label: str, namespace: MutableMapping[str, Any] | Answers, lesson: int | None = None) -> None:
        self.label, self.lesson = label, lesson
        self.answers = namespace if isinstance(namespace, Answers) else Answers(Local(namespace))

    # -- what a student calls --------------------------------------------------------------------
    def check(self) -> None:
        """Print whether the answer is correct, and what is wrong if it is not."""
        print(self.result())

    def hint(self, level: int = 1) -> None:
        """Print a hint: ``hint()`` a nudge, ``hint(2)`` a closer one (``solution()`` is the answer)."""
        if level >= 2:
            more = self.hint_more or "no second hint for this question; q.solution() shows the answer"
            print(f"{self.label} - Hint 2: {more}")
            return
        print(f"{self.label} - Hint: {self.hint_text}" + (f" (closer: {self.label}.hint(2))" if self.hint_more else ""))

    def solution(self) -> None:
        """Print a reference solution (from the exercise notebook's solution block)."""
        from ._material import solutions

        code = solutions(self.lesson).get(self.label) if self.lesson is not None else None
        print(f"{self.label} - Solution:\n{textwrap.dedent(code).strip()}" if code else
              f"{self.label} - the solutions are in the course's exercise notebooks (notebooks/exercises)")

    def result(self) -> Result:
        """The check's outcome, without printing (what graders collect)."""
        try:
            message = self.verify()
        except ChannelDown as e:
            return Result(self.label, "incorrect", f"not checked: {e}")
        except NotAnswered as e:
            return Result(self.label, "not answered", str(e) or f"define {self._names()} in the cell above")
        except Wrong as e:
            return Result(self.label, "incorrect", str(e))
        except Exception as e:  # a bug in the student's code surfaces as a message, never a traceback
            return Result(self.label, "incorrect", f"running your answer raised {kind_of(e)}: {first_line(e)}")
        return Result(self.label, "correct", message or "well done.")

    def __repr__(self) -> str:
        return f"<{self.label}: {self.title}; call .check(), .hint() or .solution()>"

    # -- what subclasses use ---------------------------------------------------------------------
    def verify(self) -> str:
        """Raise :class:`Wrong` or :class:`NotAnswered`, or return a short confirmation."""
        raise NotImplementedError

    def answer(self, name: str) -> Any:
        """The student's value of ``name``; :class:`NotAnswered` while it is the placeholder."""
        value = self.answers.get(name)
        if is_placeholder(value):
            raise NotAnswered(f"`{name}` is still `____`; replace it with your answer and run the cell")
        return value

    def call(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the student's ``fn``; an exception becomes a :class:`Wrong` message naming it,
        and a result that is the placeholder is :class:`NotAnswered`."""
        try:
            out = fn(*args, **kwargs)
        except (NotAnswered, ChannelDown):
            raise
        except Exception as e:
            if "_Placeholder" in str(e) or "____" in str(e):  # a `____` left in the code it ran
                raise NotAnswered(f"`{name}` still uses `____`; replace each one and run the cell") from None
            raise Wrong(f"calling `{name}` raised {kind_of(e)}: {first_line(e)}") from None
        if is_placeholder(out):
            raise NotAnswered(f"`{name}` still returns `____`; write the code and run the cell")
        return out

    def _names(self) -> str:
        return ", ".join(f"`{n}`" for n in self.names) or "your answer"


def require_init(model: object, cls: str) -> Model:
    """``model`` (what calling the student's class built) as a :class:`~._remote.Model`:
    :class:`Wrong` unless it is an ``nn.Module``, :class:`NotAnswered` while its ``__init__`` still
    assigns ``____`` to an attribute."""
    if not isinstance(model, Model):
        raise Wrong(f"{cls}(...) built a {type_name(model)}; {cls} should be an nn.Module (class {cls}(nn.Module))")
    if model.unset:
        raise NotAnswered(f"`{cls}.__init__` still has `____`; replace each one and run the cell")
    if model.extra:
        raise Wrong(f"{cls} learns parameters the question does not ask for ({', '.join(model.extra[:3])}): its "
                    "tables are nn.Embedding and nn.Linear layers only")
    return model


def per_row(out: Any, n: int, name: str = "forward") -> tuple[Any, str]:
    """A model's output as one number per row: shape ``(n,)``, or fastai's ``(n, 1)`` flattened (the
    note says so); :class:`Wrong` naming the shape otherwise."""
    import torch

    if not isinstance(out, torch.Tensor):
        raise Wrong(f"{name} returned a {type_name(out)}; return a tensor")
    if tuple(out.shape) == (n, 1):
        return out.detach().float()[:, 0], " (shape (batch, 1), as fastbook's models return: fastai's loss flattens it)"
    if tuple(out.shape) != (n,):
        tip = ""
        if tuple(out.shape) == (n, n):
            tip = ("; shape (batch, batch) pairs every row with every other: an nn.Embedding(n, 1) gives shape "
                   "(batch, 1), so take `[:, 0]` before adding it to a shape-(batch,) tensor, and multiply "
                   "vectors elementwise, not with a matrix product")
        elif out.dim() == 2 and out.shape[0] == n:
            tip = ": did you forget to sum over the factors (`.sum(1)`)?"
        raise Wrong(f"{name} returned shape {tuple(out.shape)} for a batch of {n} rows; a rating per row needs "
                    f"shape ({n},){tip}")
    return out.detach().float(), ""


def diagnose(got: Any, expected: Any, variants: list[tuple[Any, str]], what: str, tol: float = 1e-4) -> None:
    """:class:`Wrong` unless tensor ``got`` equals ``expected``: the message of the first of
    ``variants`` (what a common mistake computes, and its words) that ``got`` equals, else one that
    shows ``what`` was computed, the expected and the actual values."""
    import torch

    if torch.allclose(got, expected, atol=tol, rtol=tol):
        return
    for value, message in variants:
        if value.shape == got.shape and torch.allclose(got, value, atol=tol, rtol=tol):
            raise Wrong(message)
    raise Wrong(f"{what}: expected {_fmt(expected)}, got {_fmt(got)}")


def known(shape: tuple[int, ...], offset: float) -> Any:
    """Known weights for a student's layer: small, of both signs, distinct per entry (``offset``
    shifts them so that two tables differ)."""
    import torch

    n = int(torch.tensor(shape).prod())
    return ((torch.arange(n, dtype=torch.float32) * 5 % 11 - 5 + offset) / 6).view(shape)


def squash(z: Any, lo: float, hi: float) -> Any:
    """``sigmoid(z)`` scaled into ``(lo, hi)``: the reference output of a model with a ``y_range``."""
    import torch

    return torch.sigmoid(z) * (hi - lo) + lo


def squash_mistakes(z: Any, lo: float, hi: float, where: str) -> list[tuple[Any, str]]:
    """What the common mistakes in squashing raw scores ``z`` into ``y_range=(lo, hi)`` compute, each
    with its words (for :func:`diagnose`); ``where`` starts each message."""
    import torch

    s = torch.sigmoid(z)
    return [
        (z, f"{where} returns the raw output, which can fall outside y_range: squash it with "
            "`torch.sigmoid(x) * (hi - lo) + lo`"),
        (s, f"{where} gives outputs in (0, 1): scale the sigmoid into y_range with `* (hi - lo) + lo`"),
        (s * (hi - lo), f"{where}: `+ lo` is missing, so the outputs start at 0, not at lo"),
        (s * hi, f"{where}: sigmoid(x) * hi spans (0, hi), not y_range: `sigmoid(x) * (hi - lo) + lo`"),
        (s * (lo - hi) + hi, f"{where}: the range is upside down (a high raw score gives a low rating): "
                             "`sigmoid(x) * (hi - lo) + lo`"),
        *[(squash(z, a, b), f"{where} squashed into ({a}, {b}) with y_range=({lo}, {hi}): use the y_range it "
                            "is given (`self.y_range = y_range`), not fixed numbers")
          for a, b in ((0.0, 5.5), (0.5, 5.5), (0.0, 5.0), (1.0, 5.0)) if (a, b) != (lo, hi)],
    ]


def _fmt(t: Any) -> str:
    return "[" + ", ".join(f"{float(v):.4f}" for v in t.reshape(-1)[:6]) + (", ...]" if t.numel() > 6 else "]")


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it prints as (``1``, not ``np.int64(1)``)."""
    return value.item() if hasattr(value, "item") else value


def id_list(value: Any, wrong: str) -> list[Any]:
    """A student's list of IDs as plain values; :class:`Wrong` with ``wrong`` when it is not a sequence."""
    try:
        return [plain(v) for v in list(value)]
    except TypeError:
        raise Wrong(wrong) from None


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else "(no message)"


def close(a: float, b: float, tol: float = 1e-4) -> bool:
    """Whether two numbers agree to ``tol`` (relative or absolute); NaN equals NaN."""
    if math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def number(value: Any, what: str) -> float:
    """A student's number as a float; :class:`Wrong` naming ``what`` unless it is a real number
    (an int, a float or a numpy scalar; not a bool, text, a tensor or a list)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Wrong(f"{what} returned {value!r} ({type(value).__name__}); return one number (a float)")
    return float(value)
