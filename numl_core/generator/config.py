"""The generator's inputs: :class:`GeneratorConfig` (training, evaluation and the ``sample`` action) and
what a config builds: the cross-section model, the flux, the flow's architecture and the evaluation
parameters."""

from __future__ import annotations

import param

from numl_core.config import ConfigError
from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.data.generators.exclusive_1p1h_current import AXIAL_PARAMETERS
from numl_core.generator.model import PRESETS, FlowSpec
from numl_core.training import TrainingConfig


class GeneratorConfig(TrainingConfig):
    """Inputs of a flow-generator run (training and evaluation) and of the ``sample`` action.

    From :class:`~numl_core.training.TrainingConfig`: ``seed`` (of sampling and training), ``device``,
    ``epochs`` (per importance round: more fresh events beat more epochs), ``batch_size`` and
    ``learning_rate`` (Adam, at the start of each round; see ``round_decay``). Presets: "quick look" (the
    dashboard's sizes, a few minutes on a laptop) and "paper size" (the full benchmark of
    ``benchmarks/generator.py``: a 6 x 64 coupling flow, 12 rounds of a million events, 400,000 reference
    events, VEGAS with 100,000 points and 10 iterations).
    """

    ESSENTIALS = (
        "shells",
        "axial",
        "flux",
        "enu_low",
        "enu_high",
        "parameter",
        "preset",
        "rounds",
        "events_per_round",
        "n_eval",
        "device",
    )
    LABELS = {
        "shells": "Nuclear model",
        "axial": "Axial form factor",
        "removal_quadrature": "Removal-energy integral",
        "parameter": "Conditioning parameter",
        "parameter_low": "Parameter: lowest trained value",
        "parameter_high": "Parameter: highest trained value",
        "parameter_eval": "Parameter: value evaluated",
        "flux": "Neutrino flux",
        "enu_low": "Lowest neutrino energy [GeV]",
        "enu_high": "Highest neutrino energy [GeV]",
        "preset": "Flow size",
        "transforms": "Flow transforms (custom size)",
        "hidden": "Hidden units per layer (custom size)",
        "bins": "Spline bins",
        "coupling": "Coupling layers (fast sampling)",
        "training": "Training method",
        "rounds": "Importance rounds",
        "temper": "Tempering exponent of round 0",
        "round_decay": "Learning-rate decay per round",
        "events_per_round": "Events per round",
        "n_accept_reject_train": "Accept-reject training events",
        "energy_sampling": "Neutrino-energy sampling",
        "n_eval": "Evaluation events",
        "n_reference": "Reference events (weighted)",
        "n_accept_reject": "Accept-reject comparison events",
        "bins_per_dim": "Histogram bins per variable",
        "cap_quantile": "Weight-cap quantile",
        "vegas_neval": "VEGAS points per iteration",
        "vegas_nitn": "VEGAS iterations",
        "flow_file": "Flow file (sample)",
        "n_generate": "Events to write (sample)",
        "sample_mode": "Sampling mode (sample)",
        "output_file": "Output file (sample)",
        "shard_events": "Events per shard (sample)",
        "scheduler": "Dask scheduler (sample)",
    }
    NAMED_PRESETS = {
        "quick look": {
            "preset": "custom",
            "transforms": 4,
            "hidden": 64,
            "rounds": 3,
            "events_per_round": 200_000,
            "epochs": 1,
            "n_eval": 40_000,
            "n_reference": 200_000,
        },
        "paper size": {
            "preset": "custom",
            "transforms": 6,
            "hidden": 64,
            "rounds": 12,
            "events_per_round": 1_000_000,
            "epochs": 1,
            "batch_size": 512,
            "n_eval": 100_000,
            "n_reference": 400_000,
            "n_accept_reject": 10_000,
            "vegas_neval": 100_000,
            "vegas_nitn": 10,
        },
    }

    epochs = 1
    batch_size = 512
    learning_rate = 1e-3

    shells = param.Selector(
        default="1p3/2", objects=list(ex.SHELL_CHOICES), doc="Nuclear model: one carbon shell, both, or RFG."
    )
    axial = param.Selector(
        default="dipole",
        objects=["dipole", "zexp"],
        doc="Axial form factor: dipole (one axial mass) or the z expansion (coefficients z_k).",
    )
    removal_quadrature = param.Selector(
        default="smooth",
        objects=["smooth", "hermite"],
        doc="Removal-energy integral: 'smooth' (per-point Gauss-Legendre over each shell's open range, "
        "continuous in omega) or 'hermite' (8 fixed Gauss-Hermite nodes: the cross section steps in omega "
        "near threshold).",
    )
    parameter = param.Selector(
        default="none",
        objects=["none", *AXIAL_PARAMETERS],
        doc="Model parameter the flow is conditioned on (besides E_nu); 'none' for E_nu only.",
    )
    parameter_low = param.Number(
        default=0.9, doc="Lowest trained value of the parameter (axial mass: typical 0.9 GeV)."
    )
    parameter_high = param.Number(
        default=1.2, doc="Highest trained value of the parameter (axial mass: typical 1.2 GeV)."
    )
    parameter_eval = param.Number(
        default=1.05, doc="Parameter value used for the evaluation and sampling (inside the trained range)."
    )
    flux = param.Selector(default="flat", objects=["flat", "t2k"], doc="E_nu spectrum: flat or T2K ND280.")
    enu_low = param.Number(
        default=0.2, bounds=(0.15, 20.0), doc="Lowest neutrino energy [GeV]; typical 0.2 (T2K) to 1."
    )
    enu_high = param.Number(
        default=1.0, bounds=(0.2, 30.0), doc="Highest neutrino energy [GeV]; typical 1 (T2K) to 10."
    )
    preset = param.Selector(
        default="S",
        objects=[*PRESETS, "custom"],
        doc="Flow size: S (10 transforms x 256 units), M (10 x 512), L (25 x 512), or custom (transforms, "
        "hidden).",
    )
    transforms = param.Integer(
        default=10, bounds=(1, 64), doc="Flow transforms (flow size 'custom'); typical 4-12."
    )
    hidden = param.Integer(
        default=256, bounds=(4, 4096), doc="Hidden units per layer (flow size 'custom'); typical 32-512."
    )
    bins = param.Integer(default=16, bounds=(2, 64), doc="Spline bins per transform; typical 8-32.")
    coupling = param.Boolean(default=True, doc="Coupling layers (fast sampling) instead of autoregressive.")
    training = param.Selector(
        default="importance",
        objects=["importance", "accept_reject"],
        doc="Train on importance-weighted rounds (forward KL to the known density) or accept-reject events.",
    )
    rounds = param.Integer(
        default=12,
        bounds=(1, 100),
        doc="Importance rounds (round 0 uses a uniform proposal); typical 3 for a look, 10-15 to converge.",
    )
    temper = param.Number(
        default=0.3,
        bounds=(0.05, 1.0),
        doc="Round 0 learns f^temper; the exponent then rises to 1 over the first half of the rounds.",
    )
    round_decay = param.Number(
        default=0.5,
        bounds=(0.05, 1.0),
        doc="Learning-rate factor per importance round once the target is f itself (1: every round "
        "starts at learning_rate).",
    )
    events_per_round = param.Integer(
        default=1_000_000,
        bounds=(100, 50_000_000),
        doc="Weighted events per round (fresh events are cheap: a round's events cost less to draw and "
        "weight than one training epoch over them).",
    )
    n_accept_reject_train = param.Integer(
        default=20_000,
        bounds=(100, 10_000_000),
        doc="Accept-reject training events (training 'accept_reject').",
    )
    energy_sampling = param.Selector(
        default="event_rate",
        objects=["event_rate", "flux"],
        doc="Draw E_nu from the event rate flux x sigma (tabulated once from the flow; weights stay "
        "unbiased) or from the flux itself.",
    )
    n_eval = param.Integer(
        default=100_000,
        bounds=(100, 50_000_000),
        doc="Flow events for the evaluation; typical 40,000-100,000.",
    )
    n_reference = param.Integer(
        default=1_000_000,
        bounds=(1000, 100_000_000),
        doc="Weighted events in the high-statistics reference; typical 200,000-1,000,000.",
    )
    n_accept_reject = param.Integer(
        default=0,
        bounds=(0, 10_000_000),
        doc="Accept-reject events to compare (0: expected optimum only); typical 0 or 10,000.",
    )
    bins_per_dim = param.Integer(
        default=6, bounds=(2, 30), doc="Bins per variable of the 4-D histograms; typical 4-10."
    )
    cap_quantile = param.Number(
        default=0.9999,
        bounds=(0.5, 1.0),
        doc="Quantile of the weights where they are capped for unweighting; typical 0.999-0.9999.",
    )
    vegas_neval = param.Integer(
        default=20_000,
        bounds=(0, 10_000_000),
        doc="VEGAS baseline of the evaluation: points per adaptation iteration on the flow's own "
        "coordinates (same energies, q-frame nucleon, omega from threshold), vegas's default settings; "
        "0 skips it. Its unweighting figures are scored on a fresh draw of that size.",
    )
    vegas_nitn = param.Integer(
        default=5,
        bounds=(1, 100),
        doc="VEGAS baseline: adaptation iterations (run twice, the first discarded).",
    )
    flow_file = param.String(default="", doc="Saved flow for the 'sample' action (a run's flow.pt).")
    n_generate = param.Integer(
        default=100_000, bounds=(1, 1_000_000_000), doc="Events written by the 'sample' action."
    )
    sample_mode = param.Selector(
        default="importance",
        objects=["importance", "emulator"],
        doc="'sample': importance-sampled and unweighted events (exact) or the raw flow (emulator, faster).",
    )
    output_file = param.String(
        default="events.parquet",
        doc="'sample' output: a table (.parquet, .csv, .root) of the event variables, or NuHepMC "
        "(.hepmc, .hepmc3): lab-frame four-momenta with the flux-averaged cross section in the header.",
    )
    shard_events = param.Integer(
        default=100_000,
        bounds=(1, 1_000_000_000),
        doc="'sample': events per shard. Each shard draws with its own seed (from seed and its index) and, "
        "in importance mode, the w_max fixed once from a pilot sample; the shards' events and weight sums "
        "combine exactly, so the result does not depend on the scheduler.",
    )
    scheduler = param.String(
        default="",
        doc="Dask scheduler for the 'sample' shards: empty draws them one after another in this process, "
        "'local' starts a LocalCluster on this machine, or an address such as tcp://host:8786 (its workers "
        "must read flow_file at the same path).",
    )

    def validate(self) -> None:
        if not self.enu_high > self.enu_low:
            raise ConfigError("GeneratorConfig.enu_high: must exceed enu_low")
        if self.parameter != "none" and not self.parameter_high > self.parameter_low:
            raise ConfigError("GeneratorConfig.parameter_high: must exceed parameter_low")
        if self.parameter != "none" and not self.parameter_low <= self.parameter_eval <= self.parameter_high:
            raise ConfigError("GeneratorConfig.parameter_eval: must lie in [parameter_low, parameter_high]")
        if self.parameter == "axial_mass" and self.axial != "dipole":
            raise ConfigError("GeneratorConfig.parameter: axial_mass needs the dipole axial form factor")
        if self.parameter.startswith("z_") and self.axial != "zexp":
            raise ConfigError("GeneratorConfig.parameter: z coefficients need axial 'zexp'")
        if self.scheduler not in ("", "local") and ":" not in self.scheduler:
            raise ConfigError(
                f"GeneratorConfig.scheduler = {self.scheduler!r}: expected '', 'local' or a Dask scheduler "
                "address such as tcp://host:8786"
            )


def build_model(config: GeneratorConfig) -> ex.ExclusiveModel:
    """The cross-section model of a config."""
    return ex.carbon_model(config.shells, axial=config.axial, removal_quadrature=config.removal_quadrature)


def build_flux(config: GeneratorConfig) -> ex.Flux:
    """The E_nu spectrum of a config."""
    if config.flux == "flat":
        return ex.Flux.flat(config.enu_low, config.enu_high)
    return ex.Flux.t2k(config.enu_low, config.enu_high)


def build_spec(config: GeneratorConfig) -> FlowSpec:
    """Flow architecture and condition ranges of a config."""
    conditions = {"enu": (config.enu_low, config.enu_high)}
    if config.parameter != "none":
        conditions[config.parameter] = (config.parameter_low, config.parameter_high)
    common = {
        "bins": config.bins,
        "passes": 2 if config.coupling else 4,
        "seed": config.seed,
        "extra": {"shells": config.shells, "axial": config.axial},
        "omega_low": ex.omega_threshold(build_model(config)),
    }
    if config.preset == "custom":
        return FlowSpec(config.transforms, config.hidden, conditions, **common)
    return FlowSpec.preset(config.preset, conditions, **common)


def eval_params(config: GeneratorConfig) -> dict[str, float]:
    """The parameter values used for evaluation and sampling ({} without a parameter)."""
    return {} if config.parameter == "none" else {config.parameter: config.parameter_eval}
