"""What the energy workflow returns: :class:`EnergyResult` of a training run, :class:`PredictResult` of
the ``predict`` action.

Resolutions are those of :mod:`numl_core.energy.metrics`: ``res68`` is half the central 68% width of
(E_reco - E_true) / E_true, ``angle68`` the 68% quantile of the opening angle to the true neutrino
direction [degrees]. The headline values (``*_cc``) are taken on the charged-current test events, or on
all test events when the sample has no CC/NC label.

>>> import pandas as pd
>>> PredictResult(pd.DataFrame({"pred_enu_truth": [1.0]}), n_files=1).to_tables().keys()
dict_keys(['predictions'])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from numl_core.results import Result

#: The headline resolutions that summarise a run (and compare two runs), in display order.
HEADLINE_METRICS = (
    "energy_res68_transformer_cc",
    "energy_res68_calorimetric_cc",
    "energy_res68_gbdt_cc",
    "angle_res68_deg_transformer",
    "angle_res68_deg_baseline",
)


@dataclass
class EnergyResult(Result):
    """One trained and evaluated energy-and-direction model.

    Tables (all on the test events):

    - ``predictions``: ``event_id``, each target and its ``pred_<target>``, the other energy estimators
      (``energy_<name>``) and the event labels (``channel``, ``flavour``, ``topology`` where known);
    - ``resolution``: one row per estimator and group (``grouping`` all / channel / flavour / topology):
      ``n``, ``bias``, ``rms``, ``res68`` and, for direction estimators, ``angle68``, ``within15``,
      ``within7``, ``baseline68``;
    - ``resolution_by_range``: the same per true-energy range (``energy_range``) and topology (empty
      without the physics targets);
    - ``resolution_by_energy``: ``estimator``, ``low``, ``high`` [GeV], ``n``, ``bias``, ``rms``,
      ``res68``, ``median`` in bins of true energy;
    - ``history``: the shared trainer's per-epoch losses (``train_*``, ``val_*``), ``lr``, ``seconds``.

    Arrays: ``heatmap_counts`` (predicted against true energy, events per log-spaced cell, indexed
    [true, predicted]) and its ``heatmap_edges`` [GeV].

    Run facts: ``source`` of the events; ``n_train``, ``n_val``, ``n_test`` events; ``n_truncated``
    events with more than ``max_num_prongs`` particles; ``epochs_run``, ``best_epoch`` and
    ``best_val_loss``, ``stopped_early``; throughputs ``train_events_per_s`` and
    ``inference_events_per_s`` [events/s]; the config's ``import_notes`` and ``thresholds_mev`` [MeV];
    ``model_file`` (the exported TorchScript model, "" when not exported); ``seconds`` of the run.

    Headline resolutions, None when not computed (no physics targets, baselines or ablation off):
    ``energy_res68_transformer_cc``, ``energy_res68_calorimetric_cc``, ``energy_res68_gbdt_cc``,
    ``energy_res68_energy_only_loss_cc`` (the ablation trained on the energy term only) and
    ``angle_res68_deg_transformer``, ``angle_res68_deg_baseline`` (the better of the visible-momentum
    and lepton-or-visible directions) [degrees].
    """

    predictions: pd.DataFrame
    resolution: pd.DataFrame
    resolution_by_range: pd.DataFrame
    resolution_by_energy: pd.DataFrame
    history: pd.DataFrame
    heatmap_counts: np.ndarray
    heatmap_edges: np.ndarray
    source: str
    n_train: int
    n_val: int
    n_test: int
    n_truncated: int
    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    train_events_per_s: float
    inference_events_per_s: float
    import_notes: list[str]
    thresholds_mev: dict[str, float]
    model_file: str = ""
    seconds: float = 0.0
    energy_res68_transformer_cc: float | None = None
    angle_res68_deg_transformer: float | None = None
    energy_res68_calorimetric_cc: float | None = None
    energy_res68_gbdt_cc: float | None = None
    angle_res68_deg_baseline: float | None = None
    energy_res68_energy_only_loss_cc: float | None = None

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """The transformer's ``E res68 (CC)`` and ``angle res68 [deg]`` and the ``best val loss``."""
        return {
            "E res68 (CC)": values.get("energy_res68_transformer_cc"),
            "angle res68 [deg]": values.get("angle_res68_deg_transformer"),
            "best val loss": values.get("best_val_loss"),
        }


@dataclass
class PredictResult(Result):
    """The exported model applied to event files: ``predictions`` (``file``, ``event_id``, each
    ``pred_<target>``, the target itself and ``weight_physical`` where the file has them) of all
    ``n_files`` files."""

    predictions: pd.DataFrame
    n_files: int
