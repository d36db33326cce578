"""The course's exercises: the lessons that have one, and each one's questions, in order."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from .._errors import ConfigError

if TYPE_CHECKING:
    from ._question import Question

__all__ = ["EXERCISES", "questions"]

EXERCISES = {0: "ex0", 2: "ex2", 3: "ex3", 4: "ex4", 5: "ex5"}
"""Lesson number -> module of its questions (``cflearn.course.ex0`` ...)."""


def questions(lesson: int) -> tuple[type[Question], ...]:
    """The question classes of a lesson's exercise, in order."""
    if lesson not in EXERCISES:
        raise ConfigError(f"no exercise for lesson {lesson!r}; exercises exist for lessons "
                          f"{', '.join(map(str, EXERCISES))}")
    return import_module(f"{__package__}.{EXERCISES[lesson]}").QUESTIONS  # type: ignore[no-any-return]
