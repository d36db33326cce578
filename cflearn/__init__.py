"""cflearn: collaborative filtering made easy to learn, teach and use, on top of fastai."""

from . import datasets, metrics
from .collab import CollabModel
from .data import CollabData, from_df, from_file, read_ratings
from .errors import (
    CflearnError,
    ColumnError,
    ConfigError,
    DataError,
    DownloadError,
    ModelFileError,
    TrainingError,
    UnknownIDError,
)
from .evaluate import evaluate
from .export import load, save
from .learner import collab_learner, fit
from .plots import plot_loss
from .predict import predict
from .presets import PRESETS, Preset
from .recommend import FoldedUser, fold_in, recommend, recommend_all, similar_items, similar_users
from .vocab import Vocab

__version__ = "0.1.0"

__all__ = [
    "datasets",
    "metrics",
    "CollabData",
    "CollabModel",
    "Vocab",
    "Preset",
    "PRESETS",
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
    "FoldedUser",
    "evaluate",
    "plot_loss",
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
    "__version__",
]
