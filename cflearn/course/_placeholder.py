"""The ``____`` a student replaces with an answer: an answer still equal to it is not answered yet."""

from __future__ import annotations

from typing import Any

__all__ = ["PLACEHOLDER", "is_placeholder"]


class _Placeholder:
    """The ``____`` a student replaces with an answer."""

    def __repr__(self) -> str:
        return "____"


PLACEHOLDER = _Placeholder()
"""Bound to ``____`` in an exercise notebook: an answer still equal to it is not answered yet."""


def is_placeholder(value: Any) -> bool:
    """Whether ``value`` is the ``____`` placeholder, also one bound by an earlier import of this
    module (a notebook that reloaded cflearn's modules)."""
    return value is PLACEHOLDER or (type(value).__qualname__ == "_Placeholder" and type(value).__module__ == __name__)
