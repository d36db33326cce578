"""How fast the command line answers: start-up time of each kind of command, against `python -c pass`.

Each command runs as a user runs it (a fresh process), ``--repeats`` times; the table gives the
median wall time, its difference from ``python -c "import pandas"`` and whether torch / fastai were
imported (checked by running the same command in-process and looking at ``sys.modules``).
``recommend`` and ``predict`` load a small model trained once by this script (synthetic data, preset
``dual``), answered with NumPy (``cflearn.load_served``). The top imports of ``recommend`` come from
``python -X importtime``.

    python bench/startup.py [--record] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import append_results, markdown_table  # noqa: E402

CHECK = """
import sys, cflearn.cli
try:
    cflearn.cli.main(sys.argv[1:])
except SystemExit:
    pass
print("IMPORTED", "torch" in sys.modules, "fastai" in sys.modules)
"""


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def imported(args: list[str]) -> tuple[bool, bool]:
    out = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True, timeout=600).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("IMPORTED"))
    _, torch, fastai = line.split()
    return torch == "True", fastai == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    import cflearn

    ds = cflearn.datasets.synthetic(n_users=300, n_items=200, density=0.1, seed=0)
    ds.ratings.to_csv(tmp / "ratings.csv", index=False)
    learn = cflearn.fit(cflearn.collab_learner(cflearn.from_df(ds), epochs=2, progress=False))
    model = cflearn.save(learn, tmp / "model.safetensors")
    cli = [sys.executable, "-m", "cflearn"]
    commands = {
        "python -c pass": ([sys.executable, "-c", "pass"], None),
        "python -c 'import pandas'": ([sys.executable, "-c", "import pandas"], None),
        "cflearn --help": ([*cli, "--help"], ["--help"]),
        "cflearn presets": ([*cli, "presets"], ["presets"]),
        "cflearn fit (argument error)": ([*cli, "fit", "--user"], ["fit", "--user"]),
        "cflearn fit (missing file)": ([*cli, "fit", str(tmp / "nope.csv"), "--user", "u", "--item", "i", "--out",
                                        str(tmp / "o")], ["fit", str(tmp / "nope.csv"), "--user", "u", "--item", "i",
                                                          "--out", str(tmp / "o")]),
        "cflearn recommend (saved model)": ([*cli, "recommend", str(model), "--user", "1", "-n", "10"],
                                            ["recommend", str(model), "--user", "1", "-n", "10"]),
        "cflearn predict (saved model)": ([*cli, "predict", str(model), "--user", "1", "--item", "2", "3"],
                                          ["predict", str(model), "--user", "1", "--item", "2", "3"]),
        "python -c 'import torch'": ([sys.executable, "-c", "import torch"], None),
    }
    rows, pandas = [], 0.0
    for name, (cmd, check) in commands.items():
        seconds = wall(cmd, args.repeats)
        pandas = seconds if name == "python -c 'import pandas'" else pandas
        torch, fastai = imported(check) if check is not None else (name.endswith("torch'"), False)
        rows.append([name, f"{seconds:.2f}", f"{seconds - pandas:+.2f}" if pandas else "",
                     "yes" if torch else "no", "yes" if fastai else "no"])
        print(" | ".join(rows[-1]), flush=True)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cflearn", "recommend", str(model), "--user", "1"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    parts = [ln.split("|") for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    top = sorted((p for p in parts if p[1].strip().isdigit() and not p[2].startswith("  ")),
                 key=lambda p: -int(p[1]))[:5]
    notes = "Top-level imports of `cflearn recommend` (cumulative): " + ", ".join(
        f"{p[2].strip()} {int(p[1]) / 1e6:.2f} s" for p in top)
    table = markdown_table(["command", "median wall s", "over import pandas", "imports torch", "imports fastai"],
                           rows)
    print(table)
    print(notes)
    if args.record:
        append_results("Command-line start-up", table, f"{args.repeats} runs each, median. {notes}.")


if __name__ == "__main__":
    main()
