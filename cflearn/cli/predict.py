"""``cflearn predict``: a user's predicted ratings for items, from a saved model."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import coerce_id, shown

NAME = "predict"
SUMMARY = "predicted rating of a user for items, from a saved model"
ORDER = 30


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``predict`` command's arguments."""
    pred = sub.add_parser("predict", help="predicted ratings from a saved model",
                          description="Print the predicted rating of USER for each ITEM (raw IDs as in the data).")
    pred.add_argument("model", metavar="MODEL", help="model.safetensors written by `cflearn fit`")
    pred.add_argument("--user", required=True, help="raw user ID")
    pred.add_argument("--item", required=True, nargs="+", help="raw item ID(s)")
    return pred


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn predict``; the exit code. Answered from the file with NumPy (:mod:`cflearn.serve._served`:
    no torch to import), or with :func:`cflearn.load` for a model NumPy does not serve."""
    from ..serve._served import load_served

    served = load_served(args.model)
    if served is not None:
        user = coerce_id(args.user, served.users)
        items = [coerce_id(i, served.items) for i in args.item]
        table, preset = served.predict([user] * len(items), items), served.preset
    else:
        from ..serve._export import load
        from ..serve._predict import predict

        cf = load(args.model)
        user = coerce_id(args.user, cf.users)
        items = [coerce_id(i, cf.items) for i in args.item]
        table, preset = predict(cf, [user] * len(items), items), cf.preset.name
    if table.attrs.get("score_kind") == "ranking":
        print(f"preset {preset!r} ranks: these are ranking scores (higher = recommended first), "
              "not ratings")
    words = {"average user": "an unknown user, scored as the average user",
             "average item": "an unknown item, scored as the average item",
             "average user and item": "an unknown user and item, scored as the average ones",
             "user features": "a user known only by metadata, scored from their features",
             "item features": "an item known only by metadata, scored from its features"}
    for row in table.itertuples():
        fallback = str(row.fallback)
        flag = f"  ({', '.join(words.get(part, part) for part in fallback.split(', '))})" if fallback else ""
        print(f"user {shown(row.user)} item {shown(row.item)}: {row.score:.3f}{flag}")
    return 0
