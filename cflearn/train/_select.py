"""Choosing side features: a step of its own, because it trains.

A preset with ``select_features`` (``best``, and ``dual`` on data with declared features) keeps its
side features only if a model with them predicts the held-out 10% of the training rows better than
without (seeded), and weighs new users' metadata by how well it predicts training users held out as
new (:mod:`cflearn.train._feature_trust`). :func:`select_features` runs both and returns the settled
preset. :func:`cflearn.collab_learner` runs it before it builds, for a preset that has not been through it,
so a learner is built once, with the features it trains with.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from .._errors import CflearnError, ConfigError, ConfigWarning, caller_level, check_seed, closest
from ..kinds._feature_settle import needs_choice
from ..kinds._presets import DEFAULT_PRESET, OVERRIDABLE, PRESETS, FeatureChoice, Preset, get_preset
from ..kinds._settle import refuse_feature_overrides, resolve

if TYPE_CHECKING:
    from ..data._data import CollabData

__all__ = ["select_features", "choose"]


def select_features(data: CollabData, preset: str | Preset | None = None, *, seed: int | None = None,
                    device: Any = None, verbose: bool = False, **overrides: Any) -> Preset:
    """Run a preset's check of its side features and return the settled preset.

    The preset's features are those declared on the data (``cflearn.from_df(..., item_features=...,
    user_features=...)``), or for ``best`` the genres, year and tags its items table has. Each choice
    (all features; the item features alone; none) trains on 90% of the training rows and is scored on
    the other 10% (seeded; on a ``cold_users`` split, 10% of the training users held out as new users,
    scored from their metadata); the best one wins, ties keeping more features. With user features, how
    much a new user's metadata counts is chosen on training users held out as new users.

    Args:
        data: from :func:`cflearn.from_df`.
        preset: a preset name or :class:`cflearn.Preset` (default: ``"dual"``).
        seed: seeds the inner models, as ``collab_learner(..., seed=)`` would (``None``: the inner data's
            own seed); pass the seed you will build the learner with, and the choice is the one
            :func:`cflearn.collab_learner` would make.
        device: where the inner models train.
        verbose: print the choice.
        **overrides: :class:`cflearn.Preset` fields, as :func:`cflearn.collab_learner` takes them.

    Returns:
        The preset with the chosen features; ``preset.chosen`` holds the inner RMSEs (also in
        ``learn.cf.preset.feature_selection`` once trained). Pass it to :func:`cflearn.collab_learner`
        with the same overrides: the check does not run again (build many learners from one check). A
        preset with nothing to check is returned as it was named.
    """
    seed = check_seed(seed)  # before any work: a bad seed is refused at the door, not deep inside the check
    p = get_preset(DEFAULT_PRESET if preset is None else preset)
    refuse_feature_overrides(overrides, "select_features")
    for name in overrides:
        if name not in OVERRIDABLE:
            raise ConfigError(f"unknown preset field {name!r}{closest(name, sorted(OVERRIDABLE))}; see cflearn.Preset")
    given = {k: v for k, v in overrides.items() if v is not None}
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        settled = resolve(data, p.replace(**given), given)
    if not needs_choice(settled):  # nothing to check: collab_learner settles it (and says what it says) itself
        return p
    for w in said:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return choose(data, settled, given, seed=seed, device=device, say=print if verbose else None)


def choose(data: CollabData, p: Preset, given: dict[str, Any], *, seed: int | None, device: Any = None,
           say: Callable[[str], Any] | None = None) -> Preset:
    """The settled preset ``p`` with its features chosen (see :func:`select_features`); ``given``: the
    caller's overrides (a given ``bias_l2`` is kept)."""
    from ._feature_trust import choose_user_feature_weight

    if not needs_choice(p):
        return p
    if say is not None:
        say(f"preset {p.name!r}: checking the side features {(*p.item_features, *p.user_features)} on an inner "
            "split of the training rows (cflearn.select_features)")
    p, report = _select(data, p, seed, device=device, keep_bias_l2="bias_l2" in given)
    if say is not None and report:
        say(f"preset {p.name!r}: keeping {', '.join(report['chosen']) or 'no side features'} (inner RMSE "
            + "; ".join(f"{k}: {v:.4f}" for k, v in report["inner_rmse"].items()) + ")")
    weight, trust = 1.0, dict[str, Any]()
    if p.user_features:
        weight, trust = choose_user_feature_weight(data, p, seed, device=device)  # new users: do features help?
    return dataclasses.replace(p, chosen=FeatureChoice(report, weight, trust))


def _select(data: CollabData, p: Preset, seed: int | None, *, device: Any = None,
            keep_bias_l2: bool = False) -> tuple[Preset, dict[str, Any]]:
    """The preset with all its side features, with its item features only (when it has user features
    too), or the plain dot-product model (``fast``'s bias penalty unless the caller set one): whichever
    predicts best when trained on 90% of the training rows and scored on the other 10% (seeded); ties
    keep more features."""
    from ..data._data import from_df
    from ..metrics import rmse
    from ..serve._predict import predict
    from ._factory import inner_learner
    from ._fit import fit

    items, users = data.side_tables()
    # on a cold-users split the model is judged on users it never saw: so are the candidates, on training
    # users held out as new (their features, where a users table has them, are all that is known of them)
    split: Literal["random", "cold_users"] = "cold_users" if data.split == "cold_users" else "random"
    try:  # features not declared here: each candidate names its own
        inner = from_df(data.train, data.user, data.item, data.rating, data.timestamp, valid_pct=0.1, split=split,
                        seed=0 if seed is None else seed, items=items, users=users)
    except CflearnError:  # too few rows to hold some out: keep the features
        return p, {}
    valid = inner.valid
    everything = (*p.item_features, *p.user_features)
    # the two-headed preset's features are its rating head's: compare rating models of the head's size
    probe = PRESETS["best"].replace(n_factors=p.n_factors, row_l2=p.row_l2, bias_l2=p.bias_l2,
                                    item_features=p.item_features, user_features=p.user_features) if p.dual else p
    candidates = {everything: probe}
    if p.user_features and p.item_features:
        candidates[tuple(p.item_features)] = probe.replace(user_features=())
    candidates[()] = probe.replace(item_features=(), user_features=(),
                                   bias_l2=p.bias_l2 if keep_bias_l2 or p.dual else PRESETS["fast"].bias_l2)
    scores = {}
    for feats, cand in candidates.items():
        learn = fit(inner_learner(inner, cand, seed=seed, device=device))
        pred = predict(learn, valid[inner.user].tolist(), valid[inner.item].tolist(),
                       user_info=users if split == "cold_users" and cand.user_features else None)
        scores[feats] = rmse(pred["score"].to_numpy(), valid[inner.rating].to_numpy())
    chosen = min(candidates, key=lambda f: (scores[f], -len(f)))
    note = {"kept": chosen == everything, "features": list(everything), "chosen": list(chosen), "inner_split": split,
            "inner_rmse": {", ".join(f) or "none": scores[f] for f in candidates},
            "inner_rmse_with": scores[everything], "inner_rmse_without": scores[()], "inner_valid_rows": len(valid)}
    if chosen != everything:
        dropped = [f for f in everything if f not in chosen]
        tried = "; ".join(f"{', '.join(f) or 'none'}: {scores[f]:.4f}" for f in candidates)
        warnings.warn(f"preset {p.name!r}: the side features {tuple(dropped)} did not help on an inner split of the "
                      f"training rows (RMSE {tried}); training without them (select_features=False keeps them)",
                      ConfigWarning, stacklevel=caller_level())
        won = candidates[chosen]
        p = p.replace(item_features=won.item_features, user_features=won.user_features) if p.dual else won
    return p, note
