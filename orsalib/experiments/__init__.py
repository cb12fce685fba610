"""What the notebooks and the CLI run, one module per kind of study.

- :mod:`orsalib.experiments.fer`: one FER run (data -> prior cache -> loaders -> model -> ``fit``);
- :mod:`orsalib.experiments.runs`: trained runs on disk (load, reuse or train; evaluation configs);
- :mod:`orsalib.experiments.ablations`: paper Table 6 over variants and seeds;
- :mod:`orsalib.experiments.transfer`: the DARELoss transfer experiments (paper Tables 7/8).
"""

from .fer import FERData, build_fer_model, prepare_fer_data, train_fer
from .runs import baseline_config, eval_config, load_or_train, load_trained

__all__ = [
    "FERData",
    "baseline_config",
    "build_fer_model",
    "eval_config",
    "load_or_train",
    "load_trained",
    "prepare_fer_data",
    "train_fer",
]
