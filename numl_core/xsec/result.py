"""What the cross-section workflow's actions return: :class:`XsecResult` (``run``) and
:class:`TransferResult` (``transfer``).

Units: GeV, degrees for ``theta_deg``, cross sections d2sigma/dOmega domega per nucleus in nb/sr/GeV,
seconds for times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from numl_core.results import Result


@dataclass
class TransferResult(Result):
    """A base model carried over to other nuclei (the ``transfer`` action).

    ``transfer``: one row per target nucleus (``nucleus``; chi2 per point on its held-out points of the
    fine-tuned model ``finetuned``, of one trained from scratch on the same points ``scratch`` and of the
    base model scaled by A / A_base ``scaled_base``, each with normalisation factors from its predictions
    at the training points (``*_profiled``: profiled on the held-out points; ``*_train``: on the
    training points); ``finetune_seconds``, ``scratch_seconds`` (every learning rate tried),
    ``pretrain_seconds`` (NaN for a base model from an earlier run); the kept learning rates
    ``finetune_lr``, ``scratch_lr``; ``train_points``, of which ``val_points`` chose them,
    ``heldout_points``). ``transfer_points``: the held-out points of every
    target (``nucleus``, ``setting``, ``setting_label``, ``energy``, ``theta_deg``, ``omega``, ``xsec``,
    ``error``, data-set index ``group``, each method's prediction ``pred_{method}``). ``base_nucleus``:
    the nucleus the base model was fitted to (``A=<mass number>`` for an earlier run's model);
    ``finetune``: which layers were fine-tuned; ``seconds``: wall time of the action.
    """

    transfer: pd.DataFrame
    transfer_points: pd.DataFrame
    base_nucleus: str
    finetune: str
    seconds: float = float("nan")

    HEADLINE_FIELDS = ("transfer",)

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """chi2 per held-out point of the fine-tuned and the from-scratch model, mean over the targets."""
        return _transfer_headline(values.get("transfer"))


@dataclass
class XsecResult(Result):
    """A fit of one nucleus (the ``run`` action), and the transfer to other nuclei if it was asked for.

    ``points``: every point of the table (kinematics, ``xsec``, ``error``, ``citation``, ``setting``,
    ``setting_label``, ``omega_qe`` ...) with its ``split`` (train, val, test), data-set index ``group``,
    the bootstrap ensemble's mean normalisation factor ``lambda`` of its data set and, per method
    (``boot``, and ``mc`` for MC dropout), the mean and spread of sigma (``{method}_mean``,
    ``{method}_std``) and of lambda_k sigma, the prediction for the measured point (``{method}_pred``,
    ``{method}_pred_std``). ``curves``: per setting (``setting``, ``setting_label``, ``citation``,
    ``omega_qe``, ``energy``, ``theta_deg``, ``cos_theta``, ``q2``) a grid in ``omega`` with each method's
    ``{method}_mean`` and ``{method}_std``. ``normalisations``: the fitted factor per data set
    (``data_set``, ``points`` used in training, ``prior`` width, ``lambda``, ``lambda_error`` spread over
    members, ``pull``). ``history``: the training loop's record per report (``method``, ``epoch``,
    ``train_loss``, ``train_chi2``, ``val_*``, ``lr``, ``seconds``). ``summary``: per method the metrics
    of :func:`numl_core.xsec.metrics.method_summary` (chi2 per point per split, coverage, misfit ...)
    plus ``seconds`` of training and ``epochs_run`` (passes). ``nucleus``, ``split`` (points|settings),
    ``n_points``, ``mass_number`` A, ``seconds`` of the whole fit.

    With ``with_transfer`` set, also the fields of :class:`TransferResult` (``transfer``,
    ``transfer_points``, ``base_nucleus``, ``finetune``); otherwise they are None.
    """

    points: pd.DataFrame
    curves: pd.DataFrame
    normalisations: pd.DataFrame
    history: pd.DataFrame
    summary: dict[str, dict[str, float]]
    nucleus: str
    split: str
    n_points: int
    mass_number: int
    seconds: float
    transfer: pd.DataFrame | None = None
    transfer_points: pd.DataFrame | None = None
    base_nucleus: str | None = None
    finetune: str | None = None

    HEADLINE_FIELDS = ("transfer",)

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """chi2 per test point of the bootstrap ensemble and of MC dropout (``chi2/pt test (boot)``,
        ``chi2/pt test (mc)``), the ensemble's test coverage of the 1-sigma interval and, with a transfer,
        :meth:`TransferResult.headline_of`."""
        summary = values.get("summary") if isinstance(values.get("summary"), dict) else {}
        out = {f"chi2/pt test ({m})": s.get("chi2_test") for m, s in summary.items() if isinstance(s, dict)}
        out["coverage 1sigma (boot)"] = summary.get("boot", {}).get("coverage_1sigma")
        return {**out, **_transfer_headline(values.get("transfer"))}

    def with_transfer(self, transfer: TransferResult) -> XsecResult:
        """This fit with ``transfer``'s tables and labels (:attr:`seconds` stays the fit's wall time)."""
        self.transfer, self.transfer_points = transfer.transfer, transfer.transfer_points
        self.base_nucleus, self.finetune = transfer.base_nucleus, transfer.finetune
        return self


def _transfer_headline(transfer: Any) -> dict[str, Any]:
    """``fine-tuned chi2/pt`` and ``scratch chi2/pt`` of a transfer table, mean over its target nuclei.

    >>> _transfer_headline(pd.DataFrame({"finetuned": [1.0, 3.0], "scratch": [4.0, 4.0]}))
    {'fine-tuned chi2/pt': 2.0, 'scratch chi2/pt': 4.0}
    """
    if not isinstance(transfer, pd.DataFrame) or transfer.empty:
        return {}
    names = {"finetuned": "fine-tuned chi2/pt", "scratch": "scratch chi2/pt"}
    return {name: float(transfer[col].mean()) for col, name in names.items() if col in transfer}
