"""The configuration of one OmniFold-vs-IBU unfolding run."""

from __future__ import annotations

import param

from numl_core.config import ConfigError
from numl_core.data.generators import nd280_cc0pi as nd280
from numl_core.training import TrainingConfig

DISTRIBUTIONS = ["muon_p_cos", "dpt", "dalphat", "dphit"]


class UnfoldingConfig(TrainingConfig):
    """Inputs of one OmniFold-vs-IBU unfolding run.

    ``seed`` fixes the sample, the MC/data split, the throws and the training; ``epochs``,
    ``batch_size``, ``learning_rate`` and ``patience`` are those of every classifier fit.
    """

    sample = param.Selector(
        default="builtin",
        objects=["builtin", "file"],
        doc="Events from the built-in ND280 CC0pi generator or from a file.",
    )
    data_file = param.String(
        default="",
        doc="Event file (.parquet, .csv, .root) with the ND280 schema; used when sample is 'file'.",
    )
    n_events = param.Integer(
        default=200_000,
        bounds=(2_000, 5_000_000),
        doc="Events generated in total; half become MC, half (fake) data.",
    )
    fake_data = param.Selector(
        default="dphit_shape",
        objects=list(nd280.FAKE_DATA_SETS),
        doc="Reweighting that turns the data half into fake data.",
    )
    distributions = param.ListSelector(
        default=list(DISTRIBUTIONS), objects=list(DISTRIBUTIONS), doc="Distributions unfolded and compared."
    )
    iterations = param.Integer(default=15, bounds=(1, 50), doc="OmniFold iterations.")
    trials = param.Integer(default=5, bounds=(1, 10), doc="Classifier trials averaged per iteration.")
    n_throws = param.Integer(
        default=20, bounds=(0, 200), doc="Systematic throws of the MC (flux, xsec, detector)."
    )
    n_bootstrap = param.Integer(default=10, bounds=(0, 200), doc="Poisson bootstrap replicas of the data.")
    hidden_layers = param.Integer(default=2, bounds=(1, 6), doc="Hidden layers of each classifier.")
    hidden_units = param.Integer(default=100, bounds=(4, 1024), doc="Units per hidden layer.")
    learning_rate = 2e-3
    batch_size = 5_000
    epochs = 10
    patience = param.Integer(default=3, bounds=(1, 100), doc="Early-stopping patience in epochs.")
    weight_clip_max = param.Number(
        default=100.0, bounds=(1.0, 1e6), doc="Upper clip of per-step weight updates."
    )
    warm_start = param.Boolean(default=True, doc="Start each iteration's classifiers from the previous ones.")
    stop_on_convergence = param.Boolean(
        default=False, doc="Stop once the change between iterations falls below the trial spread."
    )
    run_ibu = param.Boolean(default=True, doc="Also unfold each distribution with IBU.")
    ibu_iterations = param.Integer(default=4, bounds=(1, 100), doc="IBU iterations.")
    scheduler = param.String(
        default="",
        doc="Dask scheduler for the OmniFold throws: empty trains them batched in this process, "
        "'local' starts a LocalCluster on this machine, or an address such as tcp://host:8786.",
    )
    throws_per_task = param.Integer(
        default=8, bounds=(1, 1000), doc="Throws and bootstrap replicas per Dask task (with a scheduler)."
    )

    def validate(self) -> None:
        if self.scheduler and self.stop_on_convergence:
            raise ConfigError(
                "UnfoldingConfig.stop_on_convergence: cannot be used with a scheduler "
                "(tasks could stop at different iterations)"
            )
        if self.sample == "file" and not self.data_file:
            raise ConfigError("UnfoldingConfig.data_file: required when sample is 'file'")
        if not self.distributions:
            raise ConfigError(
                "UnfoldingConfig.distributions: choose at least one of " + ", ".join(DISTRIBUTIONS)
            )
