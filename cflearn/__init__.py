"""cflearn: collaborative filtering made easy to learn, teach and use, on top of fastai.

The names below are imported on first use (PEP 562), so ``import cflearn`` and the command line
start without importing torch or fastai; ``cflearn.collab_learner`` (or any name) brings in what it
needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "CollabModel": ".serve._collab",
    "CollabData": ".data._data", "DataSpec": ".data._data", "from_df": ".data._data", "from_file": ".data._data",
    "read_ratings": ".data._data",
    "CflearnError": "._errors", "DataError": "._errors", "ColumnError": "._errors", "ConfigError": "._errors",
    "UnknownIDError": "._errors", "TrainingError": "._errors", "ModelFileError": "._errors",
    "DownloadError": "._errors", "WriteError": "._errors", "CflearnWarning": "._errors", "DataWarning": "._errors",
    "ConfigWarning": "._errors",
    "evaluate": ".evaluation._evaluate",
    "load": ".serve._export", "save": ".serve._export", "load_served": ".serve._served", "Served": ".serve._served",
    "collab_learner": ".train._learner", "fit": ".train._fit", "select_features": ".train._select",
    "plot_loss": ".report._plots",
    "predict": ".serve._predict",
    "PRESETS": ".kinds._presets", "Preset": ".kinds._presets", "y_range_for": ".kinds._presets",
    "FoldedUser": ".serve._recommend", "cold_user": ".serve._recommend", "fold_in": ".serve._recommend",
    "recommend": ".serve._recommend", "recommend_all": ".serve._recommend", "similar_items": ".serve._recommend",
    "similar_users": ".serve._recommend",
    "write_report": ".report._report",
    "Vocab": ".data._vocab",
}
_MODULES = ("baselines", "callbacks", "course", "datasets", "interpret", "kinds", "metrics", "models", "optim")

__all__ = [
    "baselines",
    "callbacks",
    "course",
    "datasets",
    "interpret",
    "kinds",
    "metrics",
    "models",
    "optim",
    "CollabData",
    "DataSpec",
    "CollabModel",
    "Vocab",
    "Preset",
    "PRESETS",
    "y_range_for",
    "from_df",
    "from_file",
    "read_ratings",
    "collab_learner",
    "select_features",
    "fit",
    "predict",
    "recommend",
    "recommend_all",
    "similar_items",
    "similar_users",
    "fold_in",
    "cold_user",
    "FoldedUser",
    "evaluate",
    "plot_loss",
    "write_report",
    "save",
    "load",
    "load_served",
    "Served",
    "CflearnError",
    "DataError",
    "ColumnError",
    "ConfigError",
    "UnknownIDError",
    "TrainingError",
    "ModelFileError",
    "DownloadError",
    "WriteError",
    "CflearnWarning",
    "DataWarning",
    "ConfigWarning",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value  # once: later lookups are plain attribute reads
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from . import baselines, callbacks, course, datasets, interpret, kinds, metrics, models, optim  # noqa: F401
    from ._errors import (  # noqa: F401
        CflearnError,
        CflearnWarning,
        ColumnError,
        ConfigError,
        ConfigWarning,
        DataError,
        DataWarning,
        DownloadError,
        ModelFileError,
        TrainingError,
        UnknownIDError,
        WriteError,
    )
    from .data._data import CollabData, DataSpec, from_df, from_file, read_ratings  # noqa: F401
    from .data._vocab import Vocab  # noqa: F401
    from .evaluation._evaluate import evaluate  # noqa: F401
    from .kinds._presets import PRESETS, Preset, y_range_for  # noqa: F401
    from .report._plots import plot_loss  # noqa: F401
    from .report._report import write_report  # noqa: F401
    from .serve._collab import CollabModel  # noqa: F401
    from .serve._export import load, save  # noqa: F401
    from .serve._predict import predict  # noqa: F401
    from .serve._recommend import (  # noqa: F401
        FoldedUser,
        cold_user,
        fold_in,
        recommend,
        recommend_all,
        similar_items,
        similar_users,
    )
    from .serve._served import Served, load_served  # noqa: F401
    from .train._fit import fit  # noqa: F401
    from .train._learner import collab_learner  # noqa: F401
    from .train._select import select_features  # noqa: F401
