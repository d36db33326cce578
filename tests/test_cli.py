import json
import os
import subprocess
import sys

import pytest

import cflearn
from cflearn.cli import main


def run_cli(*args, env=None, cwd=None):
    """Run the real `cflearn` entry point in a subprocess (exit code, stdout, stderr)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "cflearn.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def call_cli(capsys, *args):
    """The command line in this process, for paths where the entry point itself is not what is tested."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory, synth):
    path = tmp_path_factory.mktemp("in") / "ratings.csv"
    synth.ratings.rename(columns={"user": "uid", "item": "iid", "rating": "stars"}).to_csv(path, index=False)
    return path


def test_fit_writes_metrics_plot_and_model(ratings_csv, tmp_path, capsys):
    before = ratings_csv.read_bytes()
    out = tmp_path / "run"
    code, stdout, stderr = run_cli("fit", str(ratings_csv), "--user", "uid", "--item", "iid", "--rating", "stars",
                                   "--epochs", "3", "--threads", "1", "--out", str(out))
    assert code == 0, stderr
    assert ratings_csv.read_bytes() == before  # input untouched
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["threads"] == 1 and metrics["threads_reason"] == "threads=1"
    assert "on cpu, 1 thread (threads=1)" in stdout
    for key in ["rmse", "mae", "n_train", "n_valid", "fit_seconds", "preset", "seed"]:
        assert key in metrics
    assert metrics["preset"] == "dual" and metrics["seed"] == 42 and metrics["n_train"] == 4800
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert "valid RMSE" in stdout and "epoch   3/3" in stdout
    assert sorted(p.name for p in out.iterdir()) == [".cflearn-run", "loss.png", "metrics.json", "model.safetensors",
                                                     "report.html"]

    # the quick commands in this process (the same main() the console script runs; one import of torch)
    assert main(["predict", str(out / "model.safetensors"), "--user", "1", "--item", "1", "99999"]) == 0
    stdout = capsys.readouterr().out
    assert "user 1 item 1:" in stdout and "(an unknown item, scored as the average item)" in stdout
    assert main(["recommend", str(out / "model.safetensors"), "--user", "1", "-n", "3"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(out / "model.safetensors"), "--user", "99999", "-n", "3"]) == 0
    stdout = capsys.readouterr().out
    assert "most popular" in stdout and stdout.count("\n") == 4
    assert main(["recommend", str(out / "model.safetensors"), "--user", "stranger"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.strip() == "cflearn: error: user 'stranger' is a string, but the user IDs are ints: pass an ID"

    # an existing output folder is not overwritten without --force
    assert main(["fit", str(ratings_csv), "--user", "uid", "--item", "iid", "--rating", "stars",
                 "--out", str(out)]) == 1
    stderr = capsys.readouterr().err
    assert "--force" in stderr and "Traceback" not in stderr and stderr.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--user", "usr", "--item", "iid", "--rating", "stars"], "did you mean 'uid'"),
    (["--user", "uid", "--item", "iid", "--rating", "stars", "--preset", "bok"], "invalid choice"),
])
def test_cli_errors_are_one_line_without_traceback(ratings_csv, tmp_path, capsys, args, message):
    try:
        code, _, stderr = call_cli(capsys, "fit", str(ratings_csv), *args, "--out", str(tmp_path / "o"))
    except SystemExit as e:  # argparse's own errors
        code, stderr = e.code, capsys.readouterr().err
    assert code != 0
    assert message in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


def test_cli_bad_file(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, stderr = call_cli(capsys, "fit", str(empty), "--user", "a", "--item", "b", "--rating", "c", "--out",
                               str(tmp_path / "o"))
    assert code == 1 and stderr.strip().count("\n") == 0 and "empty" in stderr
    code, _, stderr = call_cli(capsys, "predict", str(tmp_path / "missing.safetensors"), "--user", "1", "--item", "1")
    assert code == 1 and "not found" in stderr and "Traceback" not in stderr


def test_help_reads_well():
    code, stdout, _ = run_cli("--help")
    assert code == 0 and "demo" in stdout and "fit" in stdout
    code, stdout, _ = run_cli("fit", "--help")
    assert code == 0 and "--valid-pct" in stdout and "--force" in stdout
    assert main(["presets"]) == 0


def test_demo_offline_trains_on_synthetic_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CFLEARN_DATA", str(tmp_path / "nothing"))
    monkeypatch.setenv("CFLEARN_CACHE", str(tmp_path / "cache"))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")  # not a demo run: the demo does not replace it
    code, _, stderr = call_cli(capsys, "demo", "--offline", "--epochs", "2", "--out", str(tmp_path / "demo"))
    assert code == 1 and "holds files cflearn did not write (notes.txt)" in stderr and stderr.count("\n") == 1
    assert (tmp_path / "demo" / "notes.txt").read_text() == "mine"
    code, stdout, stderr = call_cli(capsys, "demo", "--offline", "--epochs", "2", "--out", str(tmp_path / "demo2"))
    assert code == 0, stderr
    assert "SYNTHETIC" in stdout and "valid RMSE" in stdout
    assert (tmp_path / "demo2" / "metrics.json").is_file()
    metrics = json.loads((tmp_path / "demo2" / "metrics.json").read_text())
    assert metrics["command"] == "demo"
    methods = metrics["evaluation"]["methods"]
    assert set(methods) == {"model (dual)", "global mean", "user+item bias", "most popular", "EASE", "item-kNN"}
    assert metrics["rmse"] == methods["model (dual)"]["rmse"] < metrics["baseline_rmse_global_mean"]
    assert methods["model (dual)"]["ndcg@10"] > methods["most popular"]["ndcg@10"]  # the ranking head's lists


def test_printed_ids_and_titles_cannot_forge_lines(tmp_path, capsys):
    """IDs with ESC sequences and newlines are printed escaped (one line per item, no raw control characters)."""
    import pandas as pd

    users = [f"u{i}" for i in range(30)]
    items = ["evil\x1b[2J\nitem", "fine", "tab\there"] + [f"i{j}" for j in range(12)]
    rows = [(u, it, float(1 + (k + j) % 5)) for k, u in enumerate(users) for j, it in enumerate(items) if (k + j) % 3]
    src = tmp_path / "r.parquet"
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_parquet(src)
    out = tmp_path / "run"
    code, _, stderr = call_cli(capsys, "fit", str(src), "--user", "user", "--item", "item", "--rating", "rating",
                               "--epochs", "1", "--out", str(out))
    assert code == 0, stderr
    assert main(["recommend", str(out / "model.safetensors"), "--user", "u1", "-n", "14"]) == 0
    stdout = capsys.readouterr().out
    assert "\x1b" not in stdout and "\t" not in stdout
    import re

    lines = stdout.splitlines()
    assert lines[0].startswith("top ") and all(re.match(r"^\s*\d+\. ", line) for line in lines[1:])
    assert main(["predict", str(out / "model.safetensors"), "--user", "u1", "--item", "evil\x1b[2J\nitem"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("\n") == 1 and "\\x1b[2J\\nitem" in stdout


def test_fit_with_an_items_table_and_named_features(ratings_csv, synth, tmp_path, capsys):
    items, users = tmp_path / "items.csv", tmp_path / "users.csv"
    synth.items.rename(columns={"item": "iid"}).to_csv(items, index=False)
    synth.users.rename(columns={"user": "uid"}).to_csv(users, index=False)
    out = tmp_path / "run"
    code, stdout, stderr = call_cli(capsys, "fit", str(ratings_csv), "--user", "uid", "--item", "iid", "--rating",
                                    "stars", "--preset", "best", "--epochs", "2", "--items", str(items),
                                    "--item-features", "genres", "--users", str(users), "--user-features", "group",
                                    "--out", str(out))
    assert code == 0, stderr
    model = cflearn.load(out / "model.safetensors")
    assert type(model.model).__name__ == "HybridDotBias" and model.preset.item_features == ("genres",)
    assert any(n.startswith("genres=") for n in model.model.feature_names)
    assert model.preset.user_features == ("group",) and "group=g1" in model.model.user_feature_names
    said = cflearn.recommend(model, None, n=3, features={"group": "g1"})["fallback"]
    chart = model.model.new_user_chart  # chosen on training users held out as new, by their lists
    assert chart is not None and (said == ("user features" + (f" + popular ({chart:.0%})" if chart else ""))).all()
    assert main(["recommend", str(out / "model.safetensors"), "--features", "group=g1", "-n", "3"]) == 0
    stdout = capsys.readouterr().out
    assert "a new user (group=g1), scored from their features" in stdout and stdout.count("\n") == 4
    # a value never seen, holding terminal commands: escaped in the output and in the warning
    assert main(["recommend", str(out / "model.safetensors"), "--features", "group=\x1b[2Jg9", "-n", "3"]) == 0
    captured = capsys.readouterr()
    assert "\x1b" not in captured.out + captured.err
    assert captured.err == "cflearn: warning: user feature values the model never saw are ignored: group=\\x1b[2Jg9\n"
    base = ["fit", str(ratings_csv), "--user", "uid", "--item", "iid", "--rating", "stars"]
    for extra, message in [(["--user-features", "group"], "--user-features needs --users"),  # in this process
                           (["--item-features", "genres"], "--item-features needs --items"),
                           (["--preset", "best", "--items", str(items), "--item-features", "genre"],
                            "did you mean 'genres'")]:
        assert main([*base, *extra, "--out", str(tmp_path / "x")]) == 1
        stderr = capsys.readouterr().err
        assert message in stderr and stderr.count("\n") == 1, stderr


def test_the_summary_says_when_a_baseline_beats_the_model(ratings_csv, tmp_path, capsys):
    """A book-ratings run printed a user+item bias RMSE below the model's in its table, and the summary compared
    the model with the global mean only."""
    args = ["fit", str(ratings_csv), "--user", "uid", "--item", "iid", "--rating", "stars", "--epochs", "1"]
    code, out, err = call_cli(capsys, *args, "--preset", "fast", "--out", str(tmp_path / "a"))
    assert code == 0, err
    table = json.loads((tmp_path / "a" / "metrics.json").read_text())["evaluation"]["methods"]
    bias, model = table["user+item bias"]["rmse"], next(v["rmse"] for k, v in table.items() if k.startswith("model"))
    assert bias < model  # one epoch of a dot product: the bias baseline is better
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["loss"] == "MSE"  # what valid_loss measures
    assert (f"note: the 'user+item bias' baseline predicts these ratings better than the model (RMSE {bias:.4f} "
            f"against {model:.4f})") in out
    code, out, err = call_cli(capsys, *args, "--preset", "rank", "--out", str(tmp_path / "b"))
    table = json.loads((tmp_path / "b" / "metrics.json").read_text())["evaluation"]["methods"]
    best = max((v["ndcg@10"], k) for k, v in table.items() if not k.startswith("model"))
    model = next(v["ndcg@10"] for k, v in table.items() if k.startswith("model"))
    said = f"note: the '{best[1]}' baseline's top-10 lists beat the model's"
    assert (said in out) == (best[0] > 1.01 * model) and "--preset rank" not in out.split(said)[-1]


def test_the_command_line_says_how_to_declare_side_features_in_its_own_words():
    """'declare them (cflearn.from_df(..., users=..., --user-features [...]))' mixed the API and the CLI."""
    from cflearn.cli._common import cli_words as _cli_words

    said = _cli_words("this model (preset 'rank') was trained without user features, so it cannot score a new user "
                      "from metadata; declare them (cflearn.from_df(..., users=..., user_features=[...])) and train")
    assert "declare them (--users FILE --user-features COLS) and train" in said and "from_df" not in said
    assert "(--items FILE --item-features COLS)" in _cli_words("(cflearn.from_df(..., items=..., item_features=[...]))")


def test_a_command_is_one_module(tmp_path, monkeypatch, capsys):
    """A module in cflearn/cli with NAME, SUMMARY, ORDER, add_parser and run is a command: listed in the
    help in its order, parsed, run, and its errors printed as one line like every command's."""
    import cflearn.cli

    (tmp_path / "hello.py").write_text(
        'NAME = "hello"\nSUMMARY = "say hello"\nORDER = 15\n\n'
        "def add_parser(sub):\n    p = sub.add_parser('hello', help='say hello')\n"
        "    p.add_argument('--to', default='world')\n    return p\n\n"
        "def run(args):\n    import cflearn\n    if args.to == 'nobody':\n"
        "        raise cflearn.ConfigError('--to nobody: name someone')\n    print(f'hello {args.to}')\n    return 0\n")
    monkeypatch.setattr(cflearn.cli, "__path__", [*cflearn.cli.__path__, str(tmp_path)])
    try:
        names = [c.NAME for c in cflearn.cli.commands()]
        assert names.index("demo") < names.index("hello") < names.index("fit")
        assert main(["hello", "--to", "you"]) == 0 and capsys.readouterr().out == "hello you\n"
        assert main(["hello", "--to", "nobody"]) == 1
        err = capsys.readouterr().err
        assert err == "cflearn: error: --to nobody: name someone\n", err
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "  hello      say hello\n" in capsys.readouterr().out
    finally:
        sys.modules.pop("cflearn.cli.hello", None)  # the command is forgotten with its folder
