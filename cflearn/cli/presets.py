"""``cflearn presets``: the training presets, each as its kind describes it."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "presets"
SUMMARY = "list the training presets"
ORDER = 60


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``presets`` command's arguments."""
    return sub.add_parser("presets", help="list the training presets",
                   description="List the training presets.")


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn presets``; the exit code."""
    from ..kinds import get_kind
    from ..kinds._presets import DEFAULT_PRESET, PRESETS

    for p in PRESETS.values():
        print(f"{p.name:<8} {p.description}" + (" [the default]" if p.name == DEFAULT_PRESET else ""))
        print(f"{'':<8} {get_kind(p.kind).describe(p)}")  # the kind says how its presets train
    print(f"\nThe default, {DEFAULT_PRESET!r}, answers both questions: predicted ratings (RMSE as 'fast') and "
          "top-N lists (NDCG@10 1.000-1.006x EASE's on the rated sets of bench/suite.py, 1.02-1.12x on its "
          "interaction sets; on synthetic catalogues of 10,000-60,000 items 1.01-1.06x its EASE, 0.98-0.99x a "
          "full EASE). Pick 'fast' for ratings alone (quicker), 'best' when side features help ratings, 'rank' "
          "for lists alone (its learned head blended with EASE: 1.01-1.15x EASE's on every set of bench/suite.py, "
          "at 1.5-1.7x its learned head's CPU), 'book' to follow fastbook chapter 8; docs/guide/presets.md says "
          "which wins on which shape of data.")
    return 0
