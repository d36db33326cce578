"""cflearn: collaborative filtering made easy to learn, teach and use, on top of fastai."""

from . import callbacks, course, datasets, interpret, metrics, models, optim
from ._collab import CollabModel
from ._data import CollabData, from_df, from_file, read_ratings
from ._errors import (
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
)
from ._evaluate import evaluate
from ._export import load, save
from ._learner import collab_learner, fit
from ._plots import plot_loss
from ._predict import predict
from ._presets import PRESETS, Preset, y_range_for
from ._recommend import FoldedUser, cold_user, fold_in, recommend, recommend_all, similar_items, similar_users
from ._report import write_report
from ._vocab import Vocab

__version__ = "0.1.0"

__all__ = [
    "callbacks",
    "course",
    "datasets",
    "interpret",
    "metrics",
    "models",
    "optim",
    "CollabData",
    "CollabModel",
    "Vocab",
    "Preset",
    "PRESETS",
    "y_range_for",
    "from_df",
    "from_file",
    "read_ratings",
    "collab_learner",
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
    "CflearnError",
    "DataError",
    "ColumnError",
    "ConfigError",
    "UnknownIDError",
    "TrainingError",
    "ModelFileError",
    "DownloadError",
    "CflearnWarning",
    "DataWarning",
    "ConfigWarning",
    "__version__",
]
