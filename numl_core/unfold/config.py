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
    Presets: "quick look" (the dashboard's sizes, about a minute on a laptop) and "paper size" (the full
    benchmark of ``benchmarks/unfolding.py``: 1.2 million events, 15 iterations of 5 trials, 100 throws).
    """

    ESSENTIALS = (
        "sample",
        "data_file",
        "mc_file",
        "n_events",
        "fake_data",
        "distributions",
        "iterations",
        "trials",
        "n_throws",
        "throw_statistics",
        "n_bootstrap",
        "run_ibu",
        "epochs",
        "device",
    )
    LABELS = {
        "sample": "Event sample",
        "data_file": "Event file (the data, with an MC file)",
        "mc_file": "MC file (optional)",
        "throw_weight_prefix": "Throw-weight column prefix",
        "n_events": "Events [MC + data]",
        "fake_data": "Fake-data set",
        "distributions": "Distributions",
        "iterations": "OmniFold iterations",
        "trials": "Trials per iteration",
        "n_throws": "Systematic throws",
        "n_bootstrap": "Bootstrap replicas",
        "throw_statistics": "Throws vary the statistics too",
        "closure": "Closure test (unfold the MC's own reco)",
        "hidden_layers": "Hidden layers",
        "hidden_units": "Units per hidden layer",
        "patience": "Early-stopping patience [epochs]",
        "weight_clip_max": "Weight-update clip (max)",
        "warm_start": "Warm start from the previous iteration",
        "stop_on_convergence": "Stop on convergence",
        "run_ibu": "Also unfold with IBU",
        "ibu_iterations": "IBU iterations",
        "scheduler": "Dask scheduler",
        "throws_per_task": "Throws per Dask task",
    }
    NAMED_PRESETS = {
        "quick look": {"n_events": 50_000, "iterations": 4, "trials": 2, "n_throws": 10, "n_bootstrap": 0},
        "paper size": {
            "n_events": 1_200_000,
            "iterations": 15,
            "trials": 5,
            "n_throws": 100,
            "n_bootstrap": 0,
            "batch_size": 10_000,
        },
    }

    sample = param.Selector(
        default="builtin",
        objects=["builtin", "file"],
        doc="Events from the built-in ND280 CC0pi generator or from a file.",
    )
    data_file = param.String(
        default="",
        doc="Event file (.parquet, .csv, .root flat TTree 'events') with the ND280 schema; used when sample "
        "is 'file'. Without mc_file it is split at random into MC and data halves; with mc_file it is the "
        "data, whose truth columns may be left out (real data).",
    )
    mc_file = param.String(
        default="",
        doc="MC file (.parquet, .csv, .root) with every column of the ND280 schema, reco and truth; with "
        "sample 'file' the data_file is then unfolded with this MC instead of splitting one file (empty: "
        "split data_file in halves).",
    )
    throw_weight_prefix = param.String(
        default="throw_weight_",
        doc="MC columns PREFIX0, PREFIX1, ... (numbered from 0) are your own systematic throws: per-event "
        "factors on the MC's weight that replace the built-in flux, cross-section and detector throws; "
        "n_throws takes the first ones and may not exceed their number.",
    )
    n_events = param.Integer(
        default=200_000,
        bounds=(2_000, 5_000_000),
        doc="Events generated in total; half become MC, half (fake) data. Typical 50,000 (a quick look) "
        "to 1.2 million (the full study).",
    )
    fake_data = param.Selector(
        default="dphit_shape",
        objects=list(nd280.FAKE_DATA_SETS),
        doc="Reweighting that turns the data (the data half, or the data file) into fake data ('nominal': "
        "none; real data without truth columns must be 'nominal').",
    )
    distributions = param.ListSelector(
        default=list(DISTRIBUTIONS), objects=list(DISTRIBUTIONS), doc="Distributions unfolded and compared."
    )
    iterations = param.Integer(
        default=15, bounds=(1, 50), doc="OmniFold iterations; typical 3-5 for a look, 10-15 to converge."
    )
    trials = param.Integer(
        default=5,
        bounds=(1, 10),
        doc="Classifier trials averaged per iteration (their spread is the method's own uncertainty); "
        "typical 1-5.",
    )
    n_throws = param.Integer(
        default=20,
        bounds=(0, 200),
        doc="Systematic throws of the MC (flux, xsec, detector; or the MC file's own throw-weight columns) "
        "behind the uncertainty bands; typical 10-100 (0: none).",
    )
    throw_statistics = param.Boolean(
        default=True,
        doc="Each throw also draws a Poisson(1) weight for every MC and data event, so the throws' spread "
        "is the whole covariance (systematic and statistical, as in the reference analysis); off: throws "
        "are systematic only, and bootstrap replicas plus the MC's sum of squared weights add the "
        "statistics.",
    )
    n_bootstrap = param.Integer(
        default=0,
        bounds=(0, 200),
        doc="Poisson bootstrap replicas of the data (statistical uncertainty) when the throws do not vary "
        "the statistics; typical 10-50 (0: none).",
    )
    closure = param.Boolean(
        default=False,
        doc="Closure test: the data are the MC half itself (its reco, nominal weights), so both methods "
        "must return the MC's truth.",
    )
    hidden_layers = param.Integer(
        default=2, bounds=(1, 6), doc="Hidden layers of each classifier; typical 2-3."
    )
    hidden_units = param.Integer(
        default=100, bounds=(4, 1024), doc="Units per hidden layer of each classifier; typical 50-200."
    )
    learning_rate = 2e-3
    batch_size = 5_000
    epochs = 10
    patience = param.Integer(
        default=3,
        bounds=(1, 100),
        doc="Early-stopping patience: epochs without a lower validation loss before a fit stops; "
        "typical 2-10.",
    )
    weight_clip_max = param.Number(
        default=100.0,
        bounds=(1.0, 1e6),
        doc="Upper clip of per-step weight updates (guards against a few huge weights); typical 10-1000.",
    )
    warm_start = param.Boolean(default=True, doc="Start each iteration's classifiers from the previous ones.")
    stop_on_convergence = param.Boolean(
        default=False, doc="Stop once the change between iterations falls below the trial spread."
    )
    run_ibu = param.Boolean(default=True, doc="Also unfold each distribution with IBU.")
    ibu_iterations = param.Integer(
        default=4, bounds=(1, 100), doc="IBU iterations (more: less prior bias, more variance); typical 2-8."
    )
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
        if self.throw_statistics and self.n_bootstrap:
            raise ConfigError(
                "UnfoldingConfig.n_bootstrap: must be 0 when throw_statistics is on (the throws already vary "
                "the data's statistics; bootstrap replicas would count them twice)"
            )
        if self.closure and self.fake_data != "nominal":
            raise ConfigError(
                f"UnfoldingConfig.fake_data: the closure test unfolds the MC's own reco, so fake_data must "
                f"be 'nominal', got {self.fake_data!r}"
            )
        if self.sample == "file" and not self.data_file:
            raise ConfigError("UnfoldingConfig.data_file: required when sample is 'file'")
        if self.mc_file and self.sample != "file":
            raise ConfigError(
                f"UnfoldingConfig.mc_file: only used when sample is 'file' (got sample {self.sample!r}); "
                "clear mc_file or set sample to 'file'"
            )
        if not self.throw_weight_prefix.strip():
            raise ConfigError(
                "UnfoldingConfig.throw_weight_prefix: must not be empty (it names the MC's throw-weight "
                "columns PREFIX0, PREFIX1, ...)"
            )
        if not self.distributions:
            raise ConfigError(
                "UnfoldingConfig.distributions: choose at least one of " + ", ".join(DISTRIBUTIONS)
            )
