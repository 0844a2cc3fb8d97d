"""What the generator's actions return: :class:`GeneratorResult` (``run``: a trained flow scored as
emulator and importance sampler) and :class:`SampleResult` (``sample``: events written to a file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from numl_core.results import Result

#: Readable names of the figures in :attr:`GeneratorResult.summary`, in the order they are shown.
SUMMARY_LABELS = {
    "ress": "RESS",
    "ress_capped": "RESS (capped weights)",
    "cap_bias": "bias from capping",
    "unweighting_efficiency": "unweighting efficiency",
    "overweight_fraction": "over-weight rate",
    "integral": "flux-averaged σ [cm²]",
    "integral_rel_error": "relative error of σ",
    "mnll_optimum": "MNLL, perfect sampler (expected)",
    "mnll_flow": "MNLL, flow emulator",
    "mnll_unweighted": "MNLL, unweighted flow events",
    "mnll_accept_reject": "MNLL, accept-reject",
    "rms_pull_flow": "RMS pull, flow emulator",
    "rms_pull_unweighted": "RMS pull, unweighted flow events",
    "rms_pull_accept_reject": "RMS pull, accept-reject",
    "unweighted_per_s": "unweighted events / s",
    "vegas_ress": "RESS, VEGAS on the flow's coordinates",
    "vegas_unweighting_efficiency": "unweighting efficiency, VEGAS on the flow's coordinates",
    "vegas_unweighted_per_s": "unweighted events / s, VEGAS on the flow's coordinates",
    "vegas_integral": "flux-averaged σ [cm²], VEGAS",
    "vegas_integral_rel_error": "relative error of σ, VEGAS",
}


@dataclass
class GeneratorResult(Result):
    """A trained flow, scored.

    - ``summary``: ``metric, value``: the sampler report of the evaluation sample
      (:class:`~numl_core.generator.sampling.SamplerReport`: ``ress``, ``ress_capped``, ``cap_bias``,
      ``unweighting_efficiency``, ``overweight_fraction``, ``integral`` [cm²], ``integral_rel_error``,
      timings) and the histogram quality against the weighted reference (``mnll_optimum``,
      ``mnll_flow``/``rms_pull_flow`` of the raw flow events, ``mnll_unweighted``/``rms_pull_unweighted``
      of the hit-or-miss unweighted ones, ``n_unweighted``, ``bins_used`` and, with accept-reject
      events, ``mnll_accept_reject``, ``rms_pull_accept_reject``, ``accept_reject_acceptance``,
      ``accept_reject_events_per_s``, ``accept_reject_overflow``) and, unless ``vegas_neval`` is 0, the
      VEGAS baseline on the flow's own coordinates (``vegas_ress``, ``vegas_unweighting_efficiency``,
      ``vegas_unweighted_per_s``, ``vegas_integral``, ``vegas_integral_rel_error``);
    - ``rounds``: one row per training round (see :func:`~numl_core.generator.train.train_flow`);
    - ``marginals`` / ``marginals_2d``: normalised 1-D and 2-D histograms of each sample (``reference``,
      ``flow``, ``flow_reweighted``, ``accept_reject``;
      :func:`~numl_core.generator.sampling.marginal_histograms`);
    - ``weight_histogram``: ``low, high, count`` of log10(w / mean w) of the evaluation sample;
    - ``n_parameters`` of the flow and the run's wall time ``seconds``.
    """

    summary: pd.DataFrame
    rounds: pd.DataFrame
    marginals: pd.DataFrame
    marginals_2d: pd.DataFrame
    weight_histogram: pd.DataFrame
    n_parameters: int = 0
    seconds: float = 0.0

    HEADLINE_FIELDS = ("summary",)

    @classmethod
    def headline_of(cls, values: Mapping[str, Any]) -> dict[str, float | None]:
        """``RESS`` (relative effective sample size) and ``unweighting eff`` of the evaluation sample."""
        summary = values.get("summary")
        if not isinstance(summary, pd.DataFrame):
            return {}
        figures = dict(zip(summary["metric"], summary["value"], strict=True))
        return {"RESS": figures.get("ress"), "unweighting eff": figures.get("unweighting_efficiency")}

    def figures(self) -> dict[str, float]:
        """The summary as ``{metric: value}``."""
        return dict(zip(self.summary["metric"], self.summary["value"], strict=True))

    def summary_table(self) -> pd.DataFrame:
        """The summary with readable names: ``quantity, value`` (those of :data:`SUMMARY_LABELS` first).

        >>> r = GeneratorResult(pd.DataFrame({"metric": ["x", "ress"], "value": [1.0, 0.9]}), *[None] * 4)
        >>> r.summary_table().to_dict("list")
        {'quantity': ['RESS', 'x'], 'value': [0.9, 1.0]}
        """
        values = self.figures()
        keys = [k for k in SUMMARY_LABELS if k in values] + [k for k in values if k not in SUMMARY_LABELS]
        return pd.DataFrame(
            {"quantity": [SUMMARY_LABELS.get(k, k) for k in keys], "value": [values[k] for k in keys]}
        )


@dataclass
class SampleResult(Result):
    """Events written by the ``sample`` action: the first 1000 in ``events_head`` (columns ``enu``,
    ``cos_mu``, ``omega``, ``cos_n``, ``phi_n``, in importance mode ``weight`` (1, or the over-weight
    w / w_max), and each conditioning parameter), the ``output_file`` written, ``n_events`` in it,
    ``n_drawn`` flow events the shards drew for them (the pilot that fixes w_max not counted), the
    ``seconds`` it took and the flux-averaged total ``cross_section`` with its statistical
    ``cross_section_error`` [cm² per nucleus] (importance mode, or any NuHepMC output; None otherwise)."""

    events_head: pd.DataFrame
    output_file: str
    n_events: int
    n_drawn: int
    seconds: float
    cross_section: float | None = None
    cross_section_error: float | None = None

    def describe(self) -> str:
        """One sentence: what was written where.

        >>> SampleResult(pd.DataFrame(), "ev.parquet", 5, 10, 0.25).describe()
        'Wrote 5 events to `ev.parquet` (10 flow draws, 0.2 s).'
        """
        return (
            f"Wrote {self.n_events} events to `{self.output_file}` "
            f"({self.n_drawn} flow draws, {self.seconds:.1f} s)."
        )
