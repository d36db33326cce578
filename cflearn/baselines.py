"""The item-item baselines of :func:`cflearn.evaluate` as tools of your own: EASE and item-kNN.

``evaluate`` puts them beside every model; these are the same functions, for a benchmark or for a
baseline of your own (``evaluate(learn, baselines=[(name, factory)])``, where ``factory`` gets the
encoded training rows and returns a scorer, e.g. ``ease(interactions(...), lam).scores``).
"""

from __future__ import annotations

from .evaluation._baselines import (
           LAMBDA_ITEMS,
           MAX_ITEMS,
           MIN_COUNT,
           ItemModel,
           choose_ease_lambda,
           ease,
           interactions,
           item_knn,
)

__all__ = ["ItemModel", "interactions", "ease", "item_knn", "choose_ease_lambda", "MIN_COUNT", "MAX_ITEMS",
           "LAMBDA_ITEMS"]
