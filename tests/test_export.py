import json
import struct

import numpy as np
import pytest

import cflearn


def test_round_trip_identical_predictions_without_data(trained, synth_data, tmp_path):
    path = cflearn.save(trained, tmp_path / "m.safetensors")
    model = cflearn.load(path)
    assert model.data is None
    users = synth_data.valid["user"].tolist() + [999999]
    items = synth_data.valid["item"].tolist() + [1]
    a = cflearn.predict(trained, users, items)
    b = cflearn.predict(model, users, items)
    assert a.equals(b)
    assert model.users == trained.cf.users and model.items == trained.cf.items
    assert model.preset.name == "fast"
    assert model.item_info is not None and "genres" in model.item_info.columns


def test_string_ids_and_nn_round_trip(tmp_path):
    ds = cflearn.datasets.synthetic(n_users=50, n_items=40, density=0.3, id_type="str", seed=2)
    data = cflearn.from_df(ds)
    learn = cflearn.collab_learner(data, "fast_nn", epochs=1, progress=False)
    cflearn.fit(learn)
    model = cflearn.load(cflearn.save(learn, tmp_path / "nn.safetensors"))
    a = cflearn.predict(learn, ["u1", "u2"], ["i3", "i4"])
    assert a.equals(cflearn.predict(model, ["u1", "u2"], ["i3", "i4"]))


def _header(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return raw, n, json.loads(raw[8 : 8 + n])


def _rewrite(path, header, rest, reseal=True):
    """Write ``header`` over ``rest``; by default the header's digest is recomputed, as a forger who
    knows the format would (the checks below must stand without it)."""
    from cflearn.serve._file import header_digest as _header_digest

    text = header.get("__metadata__", {}).get("cflearn")
    try:
        meta = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        meta = None
    if reseal and isinstance(meta, dict) and "header_digest" in meta:
        meta["header_digest"] = _header_digest(meta)
        header = dict(header, __metadata__={"cflearn": json.dumps(meta)})
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + rest)


def test_newer_format_truncated_tampered(trained, tmp_path):
    path = cflearn.save(trained, tmp_path / "m.safetensors")
    raw, n, header = _header(path)
    meta = json.loads(header["__metadata__"]["cflearn"])

    newer = tmp_path / "newer.safetensors"
    meta2 = dict(meta, format_version=99)
    _rewrite(newer, dict(header, __metadata__={"cflearn": json.dumps(meta2)}), raw[8 + n :])
    with pytest.raises(cflearn.ModelFileError, match="newer.*upgrade"):
        cflearn.load(newer)

    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(cflearn.ModelFileError, match="truncated or corrupted"):
        cflearn.load(cut)

    tampered = tmp_path / "tampered.safetensors"
    _rewrite(tampered, dict(header, __metadata__={"cflearn": "{not json"}), raw[8 + n :])
    with pytest.raises(cflearn.ModelFileError, match="tampered"):
        cflearn.load(tampered)

    shapes = tmp_path / "shapes.safetensors"
    meta3 = dict(meta, model=dict(meta["model"], n_factors=meta["model"]["n_factors"] + 1))
    _rewrite(shapes, dict(header, __metadata__={"cflearn": json.dumps(meta3)}), raw[8 + n :])
    with pytest.raises(cflearn.ModelFileError, match="do not match"):
        cflearn.load(shapes)

    vocab = tmp_path / "vocab.safetensors"
    from safetensors.torch import load_file, save_file

    shorter = load_file(path)
    shorter["cflearn.users.ids"] = shorter["cflearn.users.ids"][:-1].clone()  # one user ID less
    save_file(shorter, vocab, metadata=header["__metadata__"])
    with pytest.raises(cflearn.ModelFileError, match="vocabulary|checksum"):
        cflearn.load(vocab)

    with pytest.raises(cflearn.ModelFileError, match="not found"):
        cflearn.load(tmp_path / "none.safetensors")


def test_pickle_payload_is_never_executed(tmp_path):
    """A torch/fastai-style pickle file must be refused, and its payload must not run."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(cflearn.ModelFileError):
        cflearn.load(bad)
    assert not marker.exists()


def test_save_is_atomic(trained, tmp_path, monkeypatch):
    path = cflearn.save(trained, tmp_path / "m.safetensors")
    before = path.read_bytes()
    import cflearn._io as cio

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cio.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cflearn.save(trained, path)
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left behind
    np.testing.assert_array_equal(np.frombuffer(before[:8], "<u8"), np.frombuffer(path.read_bytes()[:8], "<u8"))


def test_hybrid_round_trip(synth, tmp_path):
    data = cflearn.from_df(synth, split="cold_items", seed=1)
    learn = cflearn.collab_learner(data, "best", epochs=2, progress=False)
    cflearn.fit(learn)
    model = cflearn.load(cflearn.save(learn, tmp_path / "h.safetensors"))
    items = data.valid["item"].tolist()[:20] + [10**9]
    users = data.valid["user"].tolist()[:20] + [1]
    assert cflearn.predict(learn, users, items).equals(cflearn.predict(model, users, items))
    assert model.model.feature_names == learn.model.feature_names


def _old_hybrid_file(learn, version, path, **header_changes):
    """A format-1 or format-3 file of a hybrid learner: format 1 named the hybrid items' collaborative part
    i_weight/i_bias; formats 2-3 i_cf_weight/i_cf_bias and had no user features (users u_weight/u_bias,
    item features f_weight/f_bias/feat_idx/feat_w)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    new = cflearn.save(learn, path.with_name("v4.safetensors"))
    renames = {"u_cf_": "u_", "i_f_": "f_", "i_feat_": "feat_"} | ({"i_cf_": "i_"} if version == 1 else {})
    with safe_open(str(new), framework="pt") as f:
        meta = json.loads(f.metadata()["cflearn"])
        tensors = {}
        for k in f.keys():
            if k.startswith(("u_f_", "u_feat_", "trained_users")):
                continue  # no user features before format 4
            name = k
            for a, b in renames.items():
                name = name.replace(a, b) if name.startswith(a) else name
            tensors[name] = f.get_tensor(k)
    meta["format_version"] = version
    meta["model"] = {k: v for k, v in meta["model"].items() if "user_" not in k and k not in ("item_cf", "item_spec")}
    meta["model"].update(header_changes)
    save_file(tensors, str(path), metadata={"cflearn": json.dumps(meta)})
    return path


@pytest.fixture(scope="module")
def best_one_epoch(synth_data):
    learn = cflearn.collab_learner(synth_data, "best", epochs=1, progress=False)
    return cflearn.fit(learn)


@pytest.mark.parametrize("version", [1, 3])
def test_older_hybrid_files_still_load(best_one_epoch, synth_data, tmp_path, version):
    learn = best_one_epoch
    old = cflearn.load(_old_hybrid_file(learn, version, tmp_path / "old.safetensors"))
    users, items = synth_data.valid["user"].tolist()[:30], synth_data.valid["item"].tolist()[:30]
    assert cflearn.predict(old, users, items).equals(cflearn.predict(learn, users, items))


BOMB = """
import resource, sys
import cflearn
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    cflearn.load(sys.argv[1])
except cflearn.ModelFileError as e:
    print("refused:", e)
print("peak MB:", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.parametrize("n_users", [5 * 10**8, 5 * 10**7])
def test_an_old_file_claiming_millions_of_users_is_refused_before_the_upgrade_allocates(best_one_epoch, tmp_path,
                                                                                       n_users):
    """A 50 KB format-3 hybrid file whose header claims 5e8 users: the upgrade to today's layout used to
    allocate tables of the header's sizes before the size check."""
    import subprocess
    import sys

    bomb = _old_hybrid_file(best_one_epoch, 3, tmp_path / "bomb.safetensors", n_users=n_users)
    proc = subprocess.run([sys.executable, "-c", BOMB, str(bomb)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused:" in proc.stdout and "claims 5" in proc.stdout, proc.stdout
    peak = float(proc.stdout.rsplit("peak MB:", 1)[1])
    assert peak < 300, proc.stdout


def test_a_hostile_header_costs_nothing_and_is_one_error(trained, tmp_path):
    """Sizes in the header are checked against the tensors before anything is allocated; tampered
    values of the wrong type or range, NaN weights and deep JSON are ModelFileErrors."""
    import resource

    path = tmp_path / "m.safetensors"
    cflearn.save(trained, path)
    raw, n, header = _header(path)
    meta = json.loads(header["__metadata__"]["cflearn"])

    def variant(name, change):
        m = json.loads(json.dumps(meta))
        change(m)
        out = tmp_path / f"{name}.safetensors"
        _rewrite(out, dict(header, __metadata__={"cflearn": json.dumps(m)}), raw[8 + n:])
        return out

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    huge = variant("huge", lambda m: m["model"].update(n_factors=20_000, n_users=40_000))
    with pytest.raises(cflearn.ModelFileError, match="do not match"):
        cflearn.load(huge)
    # the 3.5 GB the header claims were never allocated (ru_maxrss is in KiB on Linux)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 500_000
    cases = {
        "negative": lambda m: m["model"].update(n_users=-5),
        "text sizes": lambda m: m["model"].update(n_factors="many"),
        "text y_range": lambda m: m["model"].update(y_range=["low", "high"]),
        "nan scale": lambda m: m.update(scale=[float("nan"), 5]),
        "text mean": lambda m: m.update(global_mean="three"),
        "config not an object": lambda m: m.update(model=[1, 2]),
    }
    for name, change in cases.items():
        with pytest.raises(cflearn.ModelFileError):
            cflearn.load(variant(name.replace(" ", "_"), change))
    deep = tmp_path / "deep.safetensors"
    _rewrite(deep, dict(header, __metadata__={"cflearn": "[" * 100_000 + "]" * 100_000}), raw[8 + n:])
    with pytest.raises(cflearn.ModelFileError, match="tampered"):
        cflearn.load(deep)


def test_nan_weights_and_bad_devices_are_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "m.safetensors"
    cflearn.save(trained, path)
    raw, n, header = _header(path)
    tensors = load_file(path)
    key = next(k for k in tensors if k.endswith("u_weight.weight"))
    tensors[key][1, 0] = float("nan")
    bad = tmp_path / "nan.safetensors"
    save_file(tensors, bad, metadata=header["__metadata__"])
    with pytest.raises(cflearn.ModelFileError, match="NaN or infinite"):
        cflearn.load(bad)
    for device in ("bogus", "meta"):
        with pytest.raises(cflearn.ConfigError, match="device"):
            cflearn.load(path, device=device)


def test_three_million_string_ids_save_and_load(tmp_path):
    """Vocabularies travel as tensors, not header JSON (safetensors caps the header at 100 MB, about
    2.4M UUID-like IDs), so a model of any trainable size can be saved; IDs round-trip exactly."""
    import torch

    from cflearn.data._vocab import Vocab
    from cflearn.models import DotBias
    from cflearn.serve._collab import CollabModel

    n = 3_000_000
    ids = np.char.add("user-7f3a9c1e-4b2d-", np.arange(n).astype(str)).tolist()
    ids[:3] = ["ünïcødé-€", "with\nnewline", "NUL\x00inside"]
    users = Vocab(ids)
    items = Vocab([1, 2, 3])
    model = DotBias(1, len(users), len(items), y_range=(0.5, 5.5))
    cf = CollabModel(model=model, users=users, items=items, scale=(1.0, 5.0), preset=cflearn.PRESETS["fast"],
                     columns={"user": "u", "item": "i", "rating": "r", "timestamp": None}, global_mean=3.0,
                     trained=True)
    path = tmp_path / "big.safetensors"
    cflearn.save(cf, path)
    loaded = cflearn.load(path)
    assert loaded.users == users and loaded.items == items
    assert loaded.users.decode([1, 2, 3]).tolist() == users.decode([1, 2, 3]).tolist()
    assert "with\nnewline" in loaded.users and torch.equal(loaded.model.u_weight.weight, model.u_weight.weight)


def _forge(path, out, edit_meta=None, edit_tensors=None):
    """What someone editing a model file with the format in hand can do: change header fields and
    tensors, then recompute every tensor's checksum and the header's digest."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from cflearn.serve._export import _digest
    from cflearn.serve._file import header_digest as _header_digest

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["cflearn"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    meta["checksums"] = {k: _digest(t) for k, t in tensors.items()}
    meta["header_digest"] = _header_digest(meta)
    save_file({k: t.contiguous() for k, t in tensors.items()}, str(out), metadata={"cflearn": json.dumps(meta)})
    return out


def test_a_resealed_forgery_is_refused_when_its_fields_disagree(synth_data, tmp_path):
    """Checksums were recomputed, as anyone editing the file can; what they cannot prove, the fields'
    agreement with each other can: y_range with the scale and the padding rule, the heads' sizes with
    the vocabularies, the item counts with the seen lists, the histories with the seen items; a header
    edited without resealing is refused by its digest; a two-headed file downgraded to format 4 too."""
    import torch

    dual = cflearn.collab_learner(synth_data, epochs=1, progress=False)  # rated: a rating head and EASE
    path = cflearn.save(cflearn.fit(dual), tmp_path / "dual.safetensors")
    assert cflearn.load(_forge(path, tmp_path / "same.safetensors")) is not None  # resealing alone changes nothing

    def rating(m):
        return m["model"]["rating"]

    half = {}

    def fewer_users(t):  # the ranking head made to hold half the users, its tensors cut to match
        indptr = t["ranking.hist_indptr"]
        half["n"] = (len(indptr) - 1) // 2
        t["ranking.hist_indptr"] = indptr[:half["n"] + 1].clone()
        t["ranking.hist_items"] = t["ranking.hist_items"][:int(indptr[half["n"]])].clone()
        half["history"] = int(indptr[half["n"]])

    def ranking_users(m):
        m["model"]["ranking"].update(n_users=half["n"], n_history=half["history"])

    def reverse_lists(key):
        def edit(t):
            t[f"ranking.{key}"] = t[f"ranking.{key}"].flip(0)
        return edit

    cases = {
        "wide y_range": (lambda m: rating(m).update(y_range=[-1000, 1000]), None, "does not follow from the scale"),
        "scale and y_range": (lambda m: (m.update(scale=[0, 1000]), rating(m).update(y_range=[0, 1000])), None,
                              "does not follow from the scale"),
        "head's users": (ranking_users, fewer_users, r"'item_item' head's n_users \(\d+\) does not match the user "
                                                     r"vocabulary"),
        "item counts": (None, lambda t: t.update({"cflearn.item_counts": t["cflearn.item_counts"].flip(0)}),
                        "item counts do not match the seen lists"),
        "histories": (None, reverse_lists("hist_items"), "ranking history"),
        "preset field": (lambda m: m["preset"].update(below_weight="heavy"), None,
                         "preset's below_weight is 'heavy', not a float"),
        "preset choice": (lambda m: m["preset"].update(rank_head="best"), None, "preset's rank_head is 'best'"),
    }
    for name, (meta_edit, tensor_edit, words) in cases.items():
        forged = _forge(path, tmp_path / f"{name}.safetensors", meta_edit, tensor_edit)
        with pytest.raises(cflearn.ModelFileError, match=words):
            cflearn.load(forged)
    raw, n, header = _header(path)
    meta = json.loads(header["__metadata__"]["cflearn"])
    meta["model"]["rating"]["y_range"] = [0.0, 9.0]
    _rewrite(tmp_path / "unsealed.safetensors", dict(header, __metadata__={"cflearn": json.dumps(meta)}),
             raw[8 + n:], reseal=False)
    with pytest.raises(cflearn.ModelFileError, match="does not match its digest"):
        cflearn.load(tmp_path / "unsealed.safetensors")
    down = _forge(path, tmp_path / "v4.safetensors", lambda m: m.update(format_version=4))
    with pytest.raises(cflearn.ModelFileError, match="'dual' model in format 4, which has no checksums"):
        cflearn.load(down)
    # a y_range the caller chose is recorded, so the file keeps it and load checks against it
    own = cflearn.collab_learner(synth_data, "fast", y_range=(0.0, 6.5), epochs=1, progress=False)
    kept = cflearn.load(cflearn.save(cflearn.fit(own), tmp_path / "own.safetensors"))
    assert kept.preset.y_range == (0.0, 6.5) and list(kept.model.y_range) == [0.0, 6.5]
    assert isinstance(kept.preset, cflearn.Preset) and kept.preset == own.cf.preset  # the typed record, loaded
    assert torch.isfinite(torch.tensor(kept.model.y_range)).all()
