"""``cflearn report``: (re)write the HTML report of a run folder."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "report"
SUMMARY = "(re)write the HTML report of a `cflearn fit` run folder"
ORDER = 50


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``report`` command's arguments."""
    rep = sub.add_parser("report", help="write the HTML report of a run folder",
                         description="Write RUN_DIR/report.html: one self-contained page (images inline, no network, "
                                     "no JavaScript) with the data, settings, loss plot, evaluation, biases, factor "
                                     "map, sample recommendations and similar items of a `cflearn fit` run.")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `cflearn fit` (or `cflearn demo`)")
    rep.add_argument("--out", metavar="FILE", help="write here instead of RUN_DIR/report.html")
    return rep


def run(args: argparse.Namespace) -> int:
    """Run ``cflearn report``; the exit code."""
    from ..report._report import write_report

    path = write_report(args.run_dir, out=args.out)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0
