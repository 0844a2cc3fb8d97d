"""The cross-section workflow's config: data selection, split, network, training and transfer learning.

Units: GeV, degrees for ``theta_deg``.

>>> XsecConfig.preset("reference").train_settings().epochs
40000
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import param

from numl_core.config import ConfigError
from numl_core.data import electron_scattering as es
from numl_core.training import TrainingConfig
from numl_core.xsec.model import INPUTS
from numl_core.xsec.train import FIXED_TRAINING, EnsembleSettings
from numl_core.xsec.transfer import TransferSettings

NUCLEUS_CHOICES = [*es.NUCLEI, "file"]
TRANSFER_TARGETS = list(es.NUCLEI)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"members": 10, "depth": 4, "width": 64, "batch_norm": False, "epochs": 3000, "batch_size": 128},
    "reference": {
        "members": 50,
        "depth": 10,
        "width": 300,
        "batch_norm": True,
        "epochs": 40_000,
        "batch_size": 256,
    },
}
"""Model sizes: ``cpu`` (the default, minutes on two cores) and ``reference`` (the published study's
10 x 300 network with batch norm and 40,000 epochs: GPU scale)."""
ENSEMBLE_FIELDS = ("members", "depth", "width", "batch_norm", "bootstrap")
"""Config fields that are :class:`~numl_core.xsec.train.EnsembleSettings` fields of the same name."""


class XsecConfig(TrainingConfig):
    """Inputs of a cross-section fit (``run``) and of transfer learning (``transfer``).

    ``epochs`` are passes over the training points; AdamW with ``learning_rate`` decays by a cosine.
    Presets: "quick look" (the dashboard's sizes, about a minute), "cpu" (the defaults, minutes on two
    cores: :data:`PRESETS` ``cpu``) and "paper size" (the published study's network, :data:`PRESETS`
    ``reference``: GPU scale).
    """

    ESSENTIALS = (
        "nucleus",
        "data_file",
        "split",
        "members",
        "inputs",
        "depth",
        "width",
        "epochs",
        "with_transfer",
        "targets",
        "device",
    )
    LABELS = {
        "nucleus": "Target nucleus",
        "data_file": "Data file",
        "drop_invalid": "Drop invalid rows of the file",
        "experiments": "Experiments (empty: all)",
        "exclude_settings": "Settings left out",
        "omega_min": "Lowest energy transfer ω [GeV]",
        "drop_lowest": "Lowest-ω points dropped per setting",
        "normalise_by": "Normalisation factors",
        "split": "Held-out unit",
        "test_fraction": "Test fraction",
        "val_fraction": "Validation fraction",
        "members": "Ensemble members",
        "bootstrap": "Bootstrap each member's points",
        "inputs": "Network inputs",
        "depth": "Blocks (depth)",
        "width": "Units per block (width)",
        "batch_norm": "Batch normalisation",
        "mc_dropout": "MC-dropout rate",
        "mc_samples": "MC-dropout samples",
        "grid_points": "Band points per setting",
        "with_transfer": "Also transfer to other nuclei",
        "targets": "Transfer target nuclei",
        "target_file": "Transfer target file",
        "target_binding": "Removal energy of the file's nucleus [GeV]",
        "target_fermi_momentum": "Fermi momentum of the file's nucleus [GeV/c]",
        "transfer_fraction": "Share of target points used",
        "transfer_val_fraction": "Share of those for validation",
        "transfer_lr_factors": "Learning-rate factors tried",
        "finetune_blocks": "Blocks fine-tuned (0: all)",
        "finetune_epochs": "Fine-tuning epochs",
        "finetune_lr": "Fine-tuning learning rate",
        "finetune_anchor": "Anchor to the pretrained weights",
        "base_run": "Base run (transfer)",
    }
    LIST_OPTIONS = {"transfer_lr_factors": (0.1, 0.3, 1.0, 3.0, 10.0)}
    NAMED_PRESETS = {
        "quick look": {"members": 5, "epochs": 300, "mc_samples": 50, "finetune_epochs": 100},
        "cpu": dict(PRESETS["cpu"]),
        "paper size": dict(PRESETS["reference"]),
    }

    epochs = 3000
    batch_size = 128
    learning_rate = 3e-3

    nucleus = param.Selector(default="C", objects=NUCLEUS_CHOICES, doc="Target nucleus, or a user's file.")
    data_file = param.String(
        default="", doc="Table in the QES-archive layout (.dat) or CSV/parquet; used when nucleus is 'file'."
    )
    drop_invalid = param.Boolean(
        default=False, doc="Drop (and count) rows of a user's file with non-positive cross section or error."
    )
    experiments = param.List(
        default=[], item_type=str, doc="Citation keys of the experiments used; empty: all of the nucleus's."
    )
    exclude_settings = param.List(
        default=[], item_type=str, doc="Setting labels ('citation, E=... GeV, theta=... deg') to leave out."
    )
    omega_min = param.Number(
        default=0.0, bounds=(0.0, 5.0), doc="Lowest energy transfer kept [GeV]; typical 0-0.05 (0: all)."
    )
    drop_lowest = param.Integer(
        default=1,
        bounds=(0, 10),
        doc="Lowest-omega points dropped per setting (near threshold); typical 0-2.",
    )
    normalise_by = param.Selector(
        default="experiment",
        objects=["experiment", "setting", "none"],
        doc="One normalisation factor per experiment, per (E, theta) setting, or none.",
    )
    split = param.Selector(
        default="points", objects=["points", "settings"], doc="Hold out random points or whole settings."
    )
    test_fraction = param.Number(
        default=0.1, bounds=(0.01, 0.5), doc="Share held out for testing; typical 0.1-0.2."
    )
    val_fraction = param.Number(
        default=0.1,
        bounds=(0.0, 0.5),
        doc="Share of the rest used for validation (best-epoch choice); typical 0.1.",
    )
    members = param.Integer(
        default=10,
        bounds=(1, 200),
        doc="Bootstrap replicas in the ensemble (their spread is the uncertainty band); typical 5-50.",
    )
    bootstrap = param.Boolean(default=True, doc="Resample each member's points (else: initialisation only).")
    inputs = param.Selector(
        default="scaling_log",
        objects=list(INPUTS),
        doc="Network inputs: 'kinematics' (E, theta, omega, cos theta, Q2); 'scaling' adds the "
        "quasi-elastic scaling variable psi' (from the nucleus's Fermi momentum and removal energy) so that "
        "what a model learns on one nucleus lines up on another; 'scaling_log' (log E, theta, omega / E, "
        "cos theta, log Q2, psi') extrapolates more gently to energies beyond the training data.",
    )
    depth = param.Integer(
        default=4, bounds=(1, 20), doc="Blocks (linear, norm, SiLU, dropout); typical 4 (CPU) to 10 (paper)."
    )
    width = param.Integer(
        default=64, bounds=(4, 1024), doc="Units per block; typical 64 (CPU) to 300 (paper)."
    )
    batch_norm = param.Boolean(default=False, doc="Batch normalisation in every block.")
    mc_dropout = param.Number(
        default=0.01,
        bounds=(0.0, 0.5),
        doc="Dropout rate of the MC-dropout network; typical 0.01-0.1 (0 skips it).",
    )
    mc_samples = param.Integer(
        default=100, bounds=(2, 10_000), doc="Dropout samples per prediction; typical 50-200."
    )
    grid_points = param.Integer(
        default=80, bounds=(10, 1000), doc="Omega points per setting in the bands; typical 40-200."
    )
    with_transfer = param.Boolean(
        default=False, doc="After the fit, also carry the model over to the target nuclei (as 'transfer')."
    )
    targets = param.ListSelector(
        default=["O", "Al", "Ca", "Fe"], objects=TRANSFER_TARGETS, doc="Nuclei to transfer to."
    )
    target_file = param.String(
        default="",
        doc="A user's table to transfer to as well (optional): the archive layout (.dat) or CSV/parquet, "
        "any nucleus (integers 1 <= Z <= A); it is checked before any training.",
    )
    target_binding = param.Number(
        default=0.0,
        bounds=(0.0, 0.1),
        doc="Removal energy [GeV] of the nucleus in a user's table (target_file, and data_file when nucleus "
        "is 'file'): shifts the quasi-elastic peak; typical 0.015-0.045 GeV. 0: the nucleus's value "
        "(measured by Moniz et al. 1971, else the nearest measured nucleus in A).",
    )
    target_fermi_momentum = param.Number(
        default=0.0,
        bounds=(0.0, 0.5),
        doc="Fermi momentum k_F [GeV/c] of the nucleus in a user's table (target_file, and data_file when "
        "nucleus is 'file'); typical 0.17 (6Li) to 0.265 (208Pb) GeV/c. 0: the nucleus's value "
        "(measured by Moniz et al. 1971, else the nearest measured nucleus in A).",
    )
    transfer_fraction = param.Number(
        default=0.1,
        bounds=(0.01, 0.9),
        doc="Share of a target's points used for fine-tuning (the rest score it); typical 0.05-0.3.",
    )
    transfer_val_fraction = param.Number(
        default=0.25,
        bounds=(0.0, 0.5),
        doc="Share of those points that choose the learning rate and the best report of the fine-tuned "
        "and the from-scratch fit (the same search and early stopping for both; 0: fit all, keep the "
        "last report).",
    )
    transfer_lr_factors = param.List(
        default=[0.1, 1.0, 3.0],
        item_type=float,
        doc="Learning rates tried for both transfer fits, as factors of each one's own (finetune_lr, "
        "learning_rate); the one with the lowest chi2 on the validation share is kept.",
    )
    finetune_blocks = param.Integer(
        default=0, bounds=(0, 20), doc="Fine-tune only the last k blocks and the head; 0: all layers."
    )
    finetune_epochs = param.Integer(
        default=1500,
        bounds=(1, 100_000),
        doc="Passes of fine-tuning at most: the report with the lowest chi2 on the validation share "
        "(transfer_val_fraction) is kept; typical 300-3000 (seconds on one CPU thread).",
    )
    finetune_lr = param.Number(
        default=1e-3, bounds=(1e-7, 1.0), doc="Learning rate of fine-tuning; typical 1e-4 to 3e-3."
    )
    finetune_anchor = param.Number(
        default=0.0,
        bounds=(0.0, 1e6),
        doc="Pull of fine-tuning back to the pretrained weights (L2-SP: a Gaussian prior of variance "
        "1 / anchor on each weight's change, shared over the fine-tuning points; 0: none, 1-100 typical).",
    )
    base_run = param.String(default="", doc="Run directory of an earlier 'run' whose model is transferred.")

    def validate(self) -> None:
        if self.nucleus == "file" and not self.data_file:
            raise ConfigError("XsecConfig.data_file: required when nucleus is 'file'")
        if not self.transfer_lr_factors or min(self.transfer_lr_factors) <= 0.0:
            raise ConfigError(
                f"XsecConfig.transfer_lr_factors = {self.transfer_lr_factors}: give at least one, all > 0"
            )
        if self.finetune_blocks > self.depth:
            raise ConfigError(
                f"XsecConfig.finetune_blocks = {self.finetune_blocks} exceeds depth = {self.depth}"
            )

    def file_nucleus(self) -> dict[str, float | None]:
        """The nuclear parameters given for a user's table, as keyword arguments of
        :func:`~numl_core.data.electron_scattering.load_file` (``None``: the nucleus's own value).

        >>> XsecConfig(target_binding=0.03).file_nucleus()
        {'binding': 0.03, 'fermi_momentum': None}
        """
        return {
            "binding": self.target_binding or None,
            "fermi_momentum": self.target_fermi_momentum or None,
        }

    @classmethod
    def preset(cls, name: str, **changes: Any) -> XsecConfig:
        """A config with the sizes of :data:`PRESETS` ``name``, then ``changes``."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **changes})

    def ensemble_settings(self, **changes: Any) -> EnsembleSettings:
        """The ensemble of a fit: this config's network and training loop, then ``changes``."""
        networks = {key: getattr(self, key) for key in ENSEMBLE_FIELDS}
        settings = EnsembleSettings(
            **networks, features=INPUTS[self.inputs], train=self.train_settings(**FIXED_TRAINING)
        )
        return replace(settings, **changes)

    def transfer_settings(self) -> TransferSettings:
        """Transfer learning: fine-tuning ``finetune_epochs`` passes at ``finetune_lr`` (the other
        training settings as the ensemble's); the network from scratch trained ``epochs`` passes."""
        return TransferSettings(
            fraction=self.transfer_fraction,
            val_share=self.transfer_val_fraction,
            lr_factors=tuple(self.transfer_lr_factors),
            blocks=self.finetune_blocks or None,
            anchor=self.finetune_anchor,
            scratch_epochs=self.epochs,
            seed=self.seed,
            train=self.train_settings(epochs=self.finetune_epochs, lr=self.finetune_lr, **FIXED_TRAINING),
        )
