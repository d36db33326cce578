"""Trained-weight fingerprints: a refactor that changes no arithmetic leaves every one unchanged.

Every preset trains for one epoch on ml-latest-small (cflearn's seeded 80/20 split), on the ratings
alone, with the items' metadata declared (genres, year, tags), and on the cold-items split; `best`
and `dual` also with a user feature. Each row is the SHA-256 of the trained weights (every tensor
of the state dict, in name order, as bytes). One torch thread and one BLAS thread, so that the sums are the
same (the default's EASE head, solved by LAPACK, sums in another order with two OpenBLAS threads).

    python bench/weights.py            # print the table
    python bench/weights.py --check    # compare with the last table recorded in RESULTS.md
    python bench/weights.py --record   # append the table to RESULTS.md
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import warnings
from typing import Any

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads its BLAS:
    os.environ[_name] = "1"  # the default's EASE head is solved by LAPACK, whose sums follow its thread count

import torch  # noqa: E402
from common import RESULTS, append_results, markdown_table  # noqa: E402

import cflearn  # noqa: E402

torch.set_num_threads(1)
_TITLE = "Trained-weight fingerprints"


def fingerprint(learn: cflearn.Learner) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(learn.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def last_recorded(text: str) -> dict[tuple[str, str], str]:
    """The newest fingerprint table in RESULTS.md: (preset, data) -> hash (a section without a table, such
    as a note that a check passed, is skipped)."""
    for section in reversed(text.split(f"## {_TITLE}")[1:]):
        body = section.split("\n## ", 1)[0]
        found = re.findall(r"^\| (\S+) \| ([^|]+?) \| ([0-9a-f]{16}|refused: \w+) \|$", body, flags=re.M)
        if found:
            return {(p, v): h for p, v, h in found}
    return {}


def runs() -> list[tuple[str, str, Any, dict[str, Any], dict[str, Any]]]:
    """(preset, what the data has, the table, from_df's arguments, collab_learner's arguments)."""
    ml = cflearn.datasets.movielens("ml-latest-small")
    plain = (ml.ratings, {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"})
    users = ml.ratings.groupby("userId").size().rename("activity").reset_index()
    users["activity"] = (users["activity"] > 50).map({True: "heavy", False: "light"})
    out: list[tuple[str, str, Any, dict[str, Any], dict[str, Any]]] = []
    for preset in cflearn.PRESETS:
        out.append((preset, "ratings", *plain, {}))
        out.append((preset, "item features", ml, {}, {}))  # the Dataset: its items table, its features declared
        out.append((preset, "cold items", ml, {"split": "cold_items"}, {}))
    for preset in ("best", "dual"):  # kept without best's check, so that the user feature is trained
        out.append((preset, "user feature", ml, {"users": users, "user_id": "userId", "user_features": ["activity"]},
                    {"select_features": False}))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    rows = []
    for preset, variant, table, data_args, learner_args in runs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                data = cflearn.from_df(table, seed=42, **data_args)
                learn = cflearn.collab_learner(data, preset, epochs=1, progress=False, **learner_args)
                cflearn.fit(learn)
            except cflearn.CflearnError as e:  # e.g. 'content' without item features: refused, as it should be
                rows.append([preset, variant, f"refused: {type(e).__name__}"])
                print(*rows[-1], flush=True)
                continue
        rows.append([preset, variant, fingerprint(learn)])
        print(*rows[-1], flush=True)
    table = markdown_table(["preset", "data", "weights (SHA-256, first 16)"], rows)
    print(table)
    if args.check:
        recorded = last_recorded(RESULTS.read_text())
        if not recorded:
            print("no recorded fingerprints to compare with")
            return 1
        changed = [(p, v) for p, v, h in rows if recorded.get((p, v)) != h]
        print(f"{len(rows) - len(changed)} of {len(rows)} unchanged" + (f"; changed: {changed}" if changed else ""))
        return 1 if changed else 0
    if args.record:
        append_results(_TITLE, table, "python bench/weights.py --record (one torch thread; one epoch each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
