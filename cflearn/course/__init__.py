"""The course's self-checking exercises (``notebooks/exercises``), in the pattern of Kaggle Learn's
learntools: a setup cell binds the questions, then ``q1.check()``, ``q1.hint()``, ``q1.solution()``.

    q1, q2, q3, q4 = cflearn.course.exercise(0, globals())

Instructors: :func:`copy_course` (``cflearn course DIR``) hands out the student notebooks;
:func:`grade` (``cflearn course --check NOTEBOOK``) grades a filled-in one in isolation.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from ._exercises import EXERCISES, questions
from ._grade import Grading, check_notebook, grade
from ._material import copy_course, student_version
from ._question import PLACEHOLDER, NotAnswered, Question, Result, Wrong

__all__ = ["exercise", "results", "EXERCISES", "PLACEHOLDER", "Question", "Result", "NotAnswered", "Wrong",
           "copy_course", "check_notebook", "grade", "Grading", "student_version"]

_bound: list[Question] = []


def exercise(lesson: int, namespace: MutableMapping[str, Any]) -> tuple[Question, ...]:
    """Bind lesson ``lesson``'s questions to ``namespace`` (the notebook's ``globals()``).

    Also binds ``____`` (the placeholder a student replaces) in ``namespace`` if it is not there.

    Returns:
        The questions ``q1, q2, ...``: each has ``check()``, ``hint()`` and ``solution()``.
    """
    namespace.setdefault("____", PLACEHOLDER)
    bound = tuple(cls(f"q{k}", namespace, lesson) for k, cls in enumerate(questions(lesson), start=1))
    _bound[:] = bound
    return bound


def results() -> list[Result]:
    """Every bound question's check, without printing (what :func:`check_notebook` collects)."""
    return [q.result() for q in _bound]
