"""The energy workflow's configuration, and the import of transformer_EE JSON configs.

:class:`EnergyConfig` is numl's own config. ``EnergyConfig.from_dict`` (and so ``from_json`` and
``numl energy run --config``) also accepts a transformer_EE config (recognised by its ``data_path``,
``vector`` or ``loss`` keys): fields that map are converted, and every field that does not is listed
in ``import_notes`` and logged, never silently dropped.

>>> cfg = EnergyConfig.from_dict({"data_path": "x.csv", "vector": ["e"], "scalar": [], "target": ["t"],
...     "loss": {"kwargs": {"coefficients": [1.0], "base_loss_names": ["mean absolute error"]}},
...     "noise": {"name": "gaussian"}})
>>> cfg.sample, cfg.loss_terms[0]["column"], cfg.import_notes
('file', 't', ["transformer_EE field 'noise' is not supported and was not applied"])
"""

from __future__ import annotations

import logging
from typing import Any

import param

from numl_core.config import ConfigError
from numl_core.data.generators.atmospheric_events import ENERGY_RANGES, TOPOLOGIES
from numl_core.data.particles import DEFAULT_THRESHOLDS_MEV, SCALAR_COLUMNS, TARGET_COLUMNS, VECTOR_COLUMNS
from numl_core.energy.losses import PHYSICS_TARGETS, LossTerm
from numl_core.energy.weights import WEIGHTERS
from numl_core.training import TrainingConfig

log = logging.getLogger(__name__)

DEFAULT_LOSS = (
    {"term": "energy", "loss": "mean absolute error", "coefficient": 1.0},
    {"term": "direction", "loss": "mean squared error", "coefficient": 1.0},
    {"term": "invariant_mass", "loss": "mean squared error", "coefficient": 0.1},
)
"""Default loss: the energy term is a mean absolute error (the model learns the conditional median of
E / E_true, robust to the one-sided tail from invisible neutrons, which suits the 68% width reported);
direction and energy-momentum consistency are added with smaller coefficients."""
TRANSFORMER_EE_COLUMNS = {
    "Nu_Energy": "enu_truth",
    "Nu_Mom_X": "nu_px_truth",
    "Nu_Mom_Y": "nu_py_truth",
    "Nu_Mom_Z": "nu_pz_truth",
    "Final_State_Particles_PDG": "part_pdg",
    "Final_State_Particles_Mass": "part_mass",
    "Final_State_Particles_Energy": "part_energy",
    "Final_State_Particles_Momentum_X": "part_px",
    "Final_State_Particles_Momentum_Y": "part_py",
    "Final_State_Particles_Momentum_Z": "part_pz",
}
"""transformer_EE's column names -> numl's: the neutrino energy [GeV] and momentum [GeV/c] targets, and the
final-state particle lists. A transformer_EE config's columns are renamed with it (its ``column_map``
field, which a config may extend or override), so its runs get numl's physics targets: direction
resolution, baselines and the resolution-vs-energy report."""
TRANSFORMER_EE_KEYS = {
    "data_path",
    "vector",
    "scalar",
    "target",
    "loss",
    "optimizer",
    "model",
    "batch_size_train",
}


class EnergyConfig(TrainingConfig):
    """Inputs of one energy-and-direction run: data, thresholds, loss, weights, model size, training.

    ``seed`` (of the sample, the split and training), ``device``, ``epochs``, ``batch_size`` and
    ``learning_rate`` come from :class:`~numl_core.training.TrainingConfig`; JSON written before the
    rename still loads its ``lr``. Presets: "quick look" (the dashboard's sizes, a few minutes on a CPU)
    and "paper size" (the full GPU benchmark of ``benchmarks/gpu.py``: 300,000 events, 12 epochs of
    batches of 4096).
    """

    RENAMED = {"lr": "learning_rate"}
    ESSENTIALS = (
        "sample",
        "data_file",
        "n_events",
        "energy_range",
        "topologies",
        "epochs",
        "learning_rate",
        "device",
        "baselines",
        "ablation",
        "export",
    )
    LABELS = {
        "sample": "Event sample",
        "data_file": "Event file",
        "n_events": "Events (built-in sample)",
        "energy_range": "True-energy range [GeV]",
        "topologies": "Topologies",
        "threshold_p_mev": "Proton threshold [MeV]",
        "threshold_pi_mev": "Charged-pion threshold [MeV]",
        "threshold_pi0_mev": "Neutral-pion threshold [MeV]",
        "threshold_k_mev": "Kaon threshold [MeV]",
        "threshold_mu_mev": "Muon threshold [MeV]",
        "threshold_e_mev": "Electron and photon threshold [MeV]",
        "vector": "Per-particle input columns",
        "scalar": "Per-event input columns",
        "target": "Target columns (energy first)",
        "energy_reference": "Energy reference column",
        "direction_reference": "Direction reference columns (x, y, z)",
        "frame_features": "Features in the reference frame",
        "max_num_prongs": "Particles per event (at most)",
        "loss_terms": "Loss terms",
        "weight": "Event weights",
        "weight_kwargs": "Weighter arguments",
        "weight_column": "Weight column",
        "column_map": "Column renames (file column: numl column)",
        "d_model": "Transformer width",
        "nhead": "Attention heads",
        "num_layers": "Encoder layers",
        "dim_feedforward": "Feed-forward width",
        "dropout": "Dropout",
        "eval_batch_size": "Evaluation batch size [events]",
        "weight_decay": "Weight decay",
        "schedule": "Learning-rate schedule",
        "patience": "Early-stopping patience [epochs]",
        "test_size": "Test fraction",
        "valid_size": "Validation fraction",
        "baselines": "Compare with the calorimetric sum and a GBDT",
        "ablation": "Also train an energy-only model",
        "export": "Export a TorchScript model",
        "model_file": "Model file (predict)",
        "predict_files": "Event files (predict)",
        "import_notes": "Import notes",
    }
    LIST_OPTIONS = {
        "vector": VECTOR_COLUMNS,
        "scalar": SCALAR_COLUMNS,
        "target": TARGET_COLUMNS,
        "direction_reference": SCALAR_COLUMNS,
    }
    NAMED_PRESETS = {
        "quick look": {"n_events": 30_000, "epochs": 5},
        "paper size": {"n_events": 300_000, "epochs": 12, "batch_size": 4096, "learning_rate": 3e-3},
    }
    epochs = 30
    batch_size = 512
    learning_rate = 1e-3

    sample = param.Selector(
        default="builtin",
        objects=["builtin", "file"],
        doc="Built-in atmospheric sample or a file (data_file).",
    )
    data_file = param.String(default="", doc="Event file (.csv, .parquet, .root) used when sample is 'file'.")
    n_events = param.Integer(
        default=200_000,
        bounds=(200, 5_000_000),
        doc="Built-in events generated (train, validation and test together); typical 30,000 for a look, "
        "150,000-300,000 for resolutions worth quoting.",
    )
    energy_range = param.Selector(
        default="0.1-100",
        objects=list(ENERGY_RANGES),
        doc="True-energy range [GeV] of the events trained on and evaluated.",
    )
    topologies = param.ListSelector(
        default=list(TOPOLOGIES),
        objects=list(TOPOLOGIES),
        doc="Final-state topologies used (CC or NC; one proton, several protons, or anything else).",
    )
    threshold_p_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["p"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold below which protons are not seen [MeV]; typical 20-50 (argon TPC).",
    )
    threshold_pi_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["pi"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold of charged pions [MeV]; typical 10-100.",
    )
    threshold_pi0_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["pi0"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold of neutral pions [MeV]; typical 20-100.",
    )
    threshold_k_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["K"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold of kaons (and other hadrons) [MeV]; typical 20-100.",
    )
    threshold_mu_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["mu"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold of muons [MeV]; typical 1-30.",
    )
    threshold_e_mev = param.Number(
        default=DEFAULT_THRESHOLDS_MEV["e"],
        bounds=(0, 1000),
        doc="Kinetic-energy threshold of electrons and photons [MeV]; typical 1-30.",
    )
    vector = param.List(
        default=list(VECTOR_COLUMNS),
        item_type=str,
        doc="Per-particle input columns (lists per event: PDG code, mass, energy, momentum).",
    )
    scalar = param.List(
        default=list(SCALAR_COLUMNS),
        item_type=str,
        doc="Per-event input columns (visible energy, particle count, visible momentum).",
    )
    target = param.List(
        default=list(TARGET_COLUMNS),
        item_type=str,
        doc="Target columns, energy first; the physics loss terms need the true energy and momentum.",
    )
    energy_reference = param.String(
        default="vis_energy", doc="Scalar column the energy is predicted relative to ('' for none)."
    )
    direction_reference = param.List(
        default=["vis_px", "vis_py", "vis_pz"],
        item_type=str,
        doc="Three scalar columns (x, y, z) of a reference momentum for the direction ([] for none).",
    )
    frame_features = param.Boolean(
        default=True,
        doc="Give particles rotation-invariant momentum features in the frame of the direction reference.",
    )
    max_num_prongs = param.Integer(
        default=20,
        bounds=(1, 200),
        doc="Particles kept per event (the most energetic); typical 10-40.",
    )
    loss_terms = param.List(
        default=[dict(t) for t in DEFAULT_LOSS],
        item_type=dict,
        doc="Loss terms: term, loss, coefficient[, column].",
    )
    weight = param.Selector(
        default="none",
        objects=list(WEIGHTERS),
        doc="Per-event training weights (the built-in sample is already flat in log E).",
    )
    weight_kwargs = param.Dict(
        default={"bins": 50, "maxweight": 10.0},
        doc="Arguments of the weighter: bins, range, maxweight, minweight (one 'key: value' per line).",
    )
    weight_column = param.String(default="", doc="Column holding weights when weight is 'column'.")
    column_map = param.Dict(
        default={},
        doc="Data-file column -> numl column, applied when a file is read (e.g. transformer_EE's "
        "Nu_Energy -> enu_truth; see TRANSFORMER_EE_COLUMNS).",
    )
    d_model = param.Integer(
        default=64, bounds=(8, 1024), doc="Transformer width (embedding size); typical 32-256."
    )
    nhead = param.Integer(
        default=4, bounds=(1, 64), doc="Attention heads (must divide d_model); typical 2-8."
    )
    num_layers = param.Integer(default=2, bounds=(1, 24), doc="Encoder layers; typical 1-6.")
    dim_feedforward = param.Integer(
        default=128, bounds=(8, 8192), doc="Feed-forward width per layer; typical 2-4 x d_model."
    )
    dropout = param.Number(
        default=0.0, bounds=(0.0, 0.9), doc="Dropout in the encoder; typical 0-0.2 (0: off)."
    )
    eval_batch_size = param.Integer(
        default=8192,
        bounds=(8, 262144),
        doc="Events per validation and test batch (memory only, no effect on the result).",
    )
    weight_decay = param.Number(
        default=0.0, bounds=(0.0, 1.0), doc="AdamW weight decay; typical 0-0.01 (0: off)."
    )
    schedule = param.Selector(
        default="cosine",
        objects=["constant", "cosine", "plateau"],
        doc="Learning-rate schedule: constant, cosine to zero over the epochs, or halved on a plateau.",
    )
    patience = param.Integer(
        default=5,
        bounds=(0, 1000),
        doc="Early-stopping patience: epochs without a lower validation loss before training stops; "
        "typical 3-10 (0: off).",
    )
    test_size = param.Number(
        default=0.2, bounds=(0.01, 0.9), doc="Fraction of events for the test set; typical 0.1-0.3."
    )
    valid_size = param.Number(
        default=0.05, bounds=(0.01, 0.9), doc="Fraction of events for validation; typical 0.05-0.1."
    )
    baselines = param.Boolean(default=True, doc="Also evaluate the calorimetric estimator and a GBDT.")
    ablation = param.Boolean(
        default=False, doc="Also train an energy-only model with the same data and budget."
    )
    export = param.Boolean(
        default=True, doc="Save a TorchScript model with normalisation in the run directory."
    )
    model_file = param.String(
        default="", doc="Exported model (model.pt of a run) the predict action applies."
    )
    predict_files = param.List(default=[], item_type=str, doc="Event files the predict action reads.")
    import_notes = param.List(
        default=[], item_type=str, doc="Fields of an imported config that were not applied."
    )

    @property
    def thresholds_mev(self) -> dict[str, float]:
        """Detection thresholds by particle kind [MeV]."""
        return {
            "p": self.threshold_p_mev,
            "pi": self.threshold_pi_mev,
            "pi0": self.threshold_pi0_mev,
            "K": self.threshold_k_mev,
            "mu": self.threshold_mu_mev,
            "e": self.threshold_e_mev,
        }

    def terms(self) -> list[LossTerm]:
        """The loss terms as :class:`LossTerm` objects."""
        return [LossTerm.from_dict(t, f"EnergyConfig.loss_terms[{i}]") for i, t in enumerate(self.loss_terms)]

    def validate(self) -> None:
        name = type(self).__name__
        if self.sample == "file" and not self.data_file:
            raise ConfigError(f"{name}.data_file: required when sample is 'file'")
        if not self.vector:
            raise ConfigError(f"{name}.vector: at least one per-particle column is needed")
        if not self.target:
            raise ConfigError(f"{name}.target: at least one target column is needed")
        if not self.topologies:
            raise ConfigError(f"{name}.topologies: choose at least one of {list(TOPOLOGIES)}")
        if self.d_model % self.nhead:
            raise ConfigError(f"{name}.nhead = {self.nhead} must divide d_model = {self.d_model}")
        if self.test_size + self.valid_size >= 0.9:
            raise ConfigError(
                f"{name}.test_size + valid_size = {self.test_size + self.valid_size:.3g} is >= 0.9"
            )
        for ref in [self.energy_reference, *self.direction_reference]:
            if ref and ref not in self.scalar:
                raise ConfigError(
                    f"{name}: reference column {ref!r} must be one of the scalar columns {self.scalar}"
                )
        if len(self.direction_reference) not in (0, 3):
            raise ConfigError(f"{name}.direction_reference: give three columns (x, y, z) or none")
        if not self.loss_terms:
            raise ConfigError(f"{name}.loss_terms: at least one term is needed")
        try:
            terms = self.terms()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        physics = sorted({t.term for t in terms if t.term != "target"})
        if physics and self.target[:4] != list(PHYSICS_TARGETS):
            raise ConfigError(
                f"{name}.loss_terms: terms {physics} need target to start with {list(PHYSICS_TARGETS)}"
            )
        for t in terms:
            if t.term == "target" and t.column not in self.target:
                raise ConfigError(
                    f"{name}.loss_terms: column {t.column!r} is not among the targets {self.target}"
                )

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str | None = None) -> EnergyConfig:
        """numl fields, or a transformer_EE config (converted by :func:`from_transformer_ee`)."""
        if (
            isinstance(values, dict)
            and TRANSFORMER_EE_KEYS & set(values)
            and not set(values) <= {*cls.field_names(), *cls.RENAMED}
        ):
            values = from_transformer_ee(values, source=source)
        return super().from_dict(values, source=source)


def _loss_terms(loss: Any, targets: list[str], notes: list[str]) -> list[dict]:
    kwargs = loss.get("kwargs", {}) if isinstance(loss, dict) else {}
    names = kwargs.get("base_loss_names")
    coefficients = kwargs.get("coefficients")
    if not isinstance(names, list) or not isinstance(coefficients, list) or len(names) != len(coefficients):
        raise ConfigError("loss.kwargs: need lists 'base_loss_names' and 'coefficients' of equal length")
    if len(names) > len(targets):
        raise ConfigError(f"loss.kwargs: {len(names)} base losses for {len(targets)} targets {targets}")
    for key in set(kwargs) - {"base_loss_names", "coefficients"}:
        notes.append(f"transformer_EE field 'loss.kwargs.{key}' is not supported and was not applied")
    return [
        {"term": "target", "loss": n, "coefficient": float(c), "column": t}
        for n, c, t in zip(names, coefficients, targets, strict=False)
    ]


def _optimizer(value: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """numl fields of transformer_EE's ``optimizer`` (its ``lr`` is our ``learning_rate``)."""
    name = value.get("name", "Adam")
    if name not in ("Adam", "AdamW"):
        notes.append(f"transformer_EE optimizer {name!r} is replaced by AdamW")
    out = {}
    for k, v in value.get("kwargs", {}).items():
        if k in ("lr", "weight_decay"):
            out[EnergyConfig.RENAMED.get(k, k)] = float(v)
        else:
            notes.append(f"transformer_EE field 'optimizer.kwargs.{k}' is not supported and was not applied")
    return out


def _model(value: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """numl fields of transformer_EE's ``model`` (its size and epochs)."""
    if value.get("name", "Transformer_EE_MV") != "Transformer_EE_MV":
        notes.append(f"transformer_EE model {value.get('name')!r} is replaced by numl's EnergyTransformer")
    out = {"epochs": int(value["epochs"])} if "epochs" in value else {}
    for k, v in value.get("kwargs", {}).items():
        if k in ("nhead", "num_layers", "d_model", "dim_feedforward", "dropout"):
            out[k] = v
        else:
            notes.append(f"transformer_EE field 'model.kwargs.{k}' is not supported and was not applied")
    return out


def _rename_columns(out: dict[str, Any], notes: list[str]) -> None:
    """Rename transformer_EE's columns in ``vector``, ``scalar`` and ``target`` to numl's
    (:data:`TRANSFORMER_EE_COLUMNS`, then the config's own ``column_map``), recording the map."""
    used = {c for key in ("vector", "scalar", "target") for c in out.get(key, [])}
    mapping = {k: v for k, v in TRANSFORMER_EE_COLUMNS.items() if k in used}
    mapping.update(out.get("column_map", {}))
    if not mapping:
        return
    for key in ("vector", "scalar", "target"):
        if key in out:
            out[key] = [mapping.get(c, c) for c in out[key]]
    out["column_map"] = mapping
    notes.append("columns read under numl's names: " + ", ".join(f"{k} -> {v}" for k, v in mapping.items()))


def from_transformer_ee(values: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """numl field values from a transformer_EE config dict; unmapped fields go to ``import_notes``."""
    where = f"{source}: " if source else ""
    notes: list[str] = []
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "data_path":
            out["sample"], out["data_file"] = "file", str(value)
        elif key in ("vector", "scalar", "target"):
            out[key] = list(value)
        elif key in ("max_num_prongs", "seed", "test_size", "valid_size"):
            out[key] = value
        elif key == "batch_size_train":
            out["batch_size"] = int(value)
        elif key in ("batch_size_valid", "batch_size_test"):
            out["eval_batch_size"] = max(int(value), out.get("eval_batch_size", 0))
        elif key == "epochs":
            out["epochs"] = int(value)
        elif key == "loss":
            continue
        elif key == "optimizer":
            out.update(_optimizer(value, notes))
        elif key == "model":
            out.update(_model(value, notes))
        elif key == "weight":
            out["weight"] = value.get("name", "none")
            out["weight_kwargs"] = dict(value.get("kwargs", {}))
        elif key == "column_map":
            out["column_map"] = dict(value)
        elif key == "save_path":
            notes.append("transformer_EE field 'save_path' is not used: results go to the numl run directory")
        else:
            notes.append(f"transformer_EE field {key!r} is not supported and was not applied")
    _rename_columns(out, notes)
    targets = out.get("target", list(TARGET_COLUMNS))
    out["loss_terms"] = (
        _loss_terms(values.get("loss", {}), targets, notes)
        if "loss" in values
        else [{"term": "target", "loss": "mean squared error", "coefficient": 1.0, "column": targets[0]}]
    )
    nhead = int(out.get("nhead", 4))
    d_model = int(out.get("d_model", 64))
    if d_model % nhead:
        out["d_model"] = nhead * -(-d_model // nhead)
        notes.append(f"d_model raised to {out['d_model']} so that nhead={nhead} divides it")
    out["weight_kwargs"] = _check_weight_kwargs(out.get("weight_kwargs", {"bins": 50}), notes)
    out.setdefault("weight", "none")
    out.setdefault("energy_reference", "")
    out.setdefault("direction_reference", [])
    for note in notes:
        log.warning("%s%s", where, note)
    out["import_notes"] = notes
    return out


def _check_weight_kwargs(kwargs: dict, notes: list[str]) -> dict:
    allowed = {"bins", "range", "maxweight", "minweight"}
    for key in set(kwargs) - allowed:
        notes.append(f"transformer_EE field 'weight.kwargs.{key}' is not supported and was not applied")
    return {k: v for k, v in kwargs.items() if k in allowed}
