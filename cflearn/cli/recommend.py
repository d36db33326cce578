"""``cflearn recommend``: a user's (or a new user's) top-N items, from a saved model."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import coerce_id, shown

NAME = "recommend"
SUMMARY = "top-N items for a user, from a saved model"
ORDER = 40


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``recommend`` command's arguments."""
    rec = sub.add_parser("recommend", help="top-N items for a user from a saved model",
                         description="Print the top-N items for USER (unseen in training), best first. An unknown "
                                     "user gets the most popular items, and the output says so. A new user known "
                                     "only by metadata: --features col=value ... (a model fit with --user-features).")
    rec.add_argument("model", metavar="MODEL", help="model.safetensors written by `cflearn fit`")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="raw user ID")
    who.add_argument("--features", nargs="+", metavar="COL=VALUE",
                     help="a new user's metadata, e.g. age=25 gender=F occupation=writer")
    rec.add_argument("-n", type=int, default=10, help="how many items (default: 10)")
    rec.add_argument("--include-seen", action="store_true", help="also list items the user rated in training")
    rec.add_argument("--min-ratings", type=int, default=1,
                     help="only items with at least this many training ratings (default: 1)")
    return rec


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn recommend``; the exit code. A known or unknown user is answered from the file with NumPy
    (:mod:`cflearn.serve._served`: no torch to import); a new user's features, or a model NumPy does not serve,
    with :func:`cflearn.load`."""
    from ..serve._served import load_served

    features = None if args.features is None else _pairs(args.features)
    served = load_served(args.model) if features is None else None
    if served is not None:
        user = coerce_id(args.user, served.users)
        top = served.recommend(user, n=args.n, exclude_seen=not args.include_seen, min_ratings=args.min_ratings)
    else:
        from ..serve._export import load
        from ..serve._recommend import cold_user, recommend

        cf = load(args.model)
        user = cold_user(cf, features) if features is not None else coerce_id(args.user, cf.users)
        top = recommend(cf, user, n=args.n, exclude_seen=not args.include_seen, min_ratings=args.min_ratings)
    if features is not None:
        pairs = ", ".join(f"{k}={shown(v)}" for k, v in features.items())
        how = ("scored from their features" if user.chart <= 0 else
               "the most popular items (this model's user features did not help users held out as new)"
               if user.source != "user features" else
               "the most popular items (this model's lists do not use user features; its predicted ratings do)"
               if user.chart >= 1 else
               f"scored from their features, leaning on the most popular items ({user.chart:.0%}: the features "
               "helped users held out as new only in part)")
        print(f"top {len(top)} for a new user ({pairs}), {how}:")
    elif (top["fallback"] == "popular").any():
        print(f"user {shown(user)} is not in the training data: showing the most popular items (score: their "
              "number of training ratings)")
    elif len(top) < args.n:
        print(f"top {len(top)} for user {shown(user)} (only {len(top)} items they have not rated are left to "
              "recommend):")
    else:
        print(f"top {len(top)} for user {shown(user)}:")
    extra = [c for c in ("title", "genres") if c in top.columns]
    rated = "rating" in top.columns and not (top["fallback"] == "popular").any()
    for row in top.itertuples():
        label = " ".join(shown(getattr(row, c)) for c in extra)
        stars = f"  predicted {row.rating:.1f}" if rated else ""
        print(f"{row.rank:>3}. {shown(row.item):<10} {row.score:5.2f}{stars}  {label}".rstrip())
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    """``["age=25", "gender=F"]`` -> ``{"age": "25", "gender": "F"}``."""
    from .._errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--features takes COL=VALUE pairs, got {item!r} (e.g. --features age=25 gender=F)")
        if key.strip() in out:
            raise ConfigError(f"--features gives {key.strip()!r} twice ({out[key.strip()]!r} and {value.strip()!r}); "
                              "give each column once")
        out[key.strip()] = value.strip()
    return out
