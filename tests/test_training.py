"""The shared training loop: convergence, early stopping, metrics, checkpoints, resume, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from numl_core.jobs import JobCancelled, Progress
from numl_core.runs import RunStore
from numl_core.training import TrainSettings, evaluate, fit, predict


def _data(n: int = 512, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def _mse(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    x, y = batch
    err = model(x) - y
    return {"loss": (err**2).mean(), "mae": err.abs().mean()}


def _model(seed: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(3, 1)


def test_fit_recovers_a_linear_model_and_reports_each_term_per_split():
    x, y = _data()
    progress = Progress()
    model = _model()
    out = fit(
        model,
        _mse,
        (x, y),
        (x[:128], y[:128]),
        TrainSettings(epochs=40, batch_size=64, lr=0.05, patience=0),
        progress,
    )
    # noise sigma 0.1 on 512 events: the least-squares weights are within ~0.1/sqrt(512)*3 of the truth
    assert torch.allclose(model.weight.detach(), torch.tensor([[1.0, -2.0, 0.5]]), atol=0.03)
    assert out.epochs_run == 40 and len(out.history) == 40
    assert out.history[-1]["val_loss"] == pytest.approx(0.01, rel=0.5)
    records, _ = progress.read_metrics(0)
    keys = {(r["split"], r["term"]) for r in records}
    assert keys == {("train", "total"), ("val", "total"), ("train", "mae"), ("val", "mae")}
    assert all(r["name"] == "loss" for r in records)
    assert out.train_events_per_s > 0


def test_early_stopping_keeps_the_best_parameters():
    x, y = _data()
    noise = torch.randn_like(
        y
    )  # validation targets unrelated to x: the validation loss cannot keep improving
    model = _model()
    out = fit(model, _mse, (x, y), (x, noise), TrainSettings(epochs=100, batch_size=64, lr=0.05, patience=3))
    assert out.stopped_early and out.epochs_run < 100
    assert out.epochs_run - 1 - out.best_epoch == 3
    assert evaluate(model, _mse, (x, noise))["loss"] == pytest.approx(out.best_val_loss, rel=1e-5)


def test_cancel_then_resume_matches_an_uninterrupted_run(tmp_path):
    x, y = _data()
    settings = TrainSettings(epochs=6, batch_size=100, lr=0.01, patience=0, schedule="cosine")
    straight = _model()
    fit(straight, _mse, (x, y), (x, y), settings)

    run = RunStore(tmp_path).create("test", None)
    progress = Progress(run)
    seen = []

    def cancel_after_three(kind: str, payload: object) -> None:
        if kind == "update":
            seen.append(payload)
            if len(seen) == 3:
                progress.request_cancel()

    progress.listeners.append(cancel_after_three)
    interrupted = _model()
    with pytest.raises(JobCancelled):
        fit(interrupted, _mse, (x, y), (x, y), settings, progress)
    assert run.load_checkpoint("model-last")["epoch"] == 3
    assert run.load_checkpoint("model-best") is not None

    resumed = _model(seed=99)  # other initial parameters: everything must come from the checkpoint
    out = fit(resumed, _mse, (x, y), (x, y), settings, Progress(run))
    assert out.epochs_run == 6 and len(out.history) == 6
    assert torch.equal(resumed.weight, straight.weight) and torch.equal(resumed.bias, straight.bias)


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    x, y = _data(64)
    run = RunStore(tmp_path).create("test", None)
    fit(_model(), _mse, (x, y), None, TrainSettings(epochs=1, batch_size=32), Progress(run))
    with pytest.raises(ValueError, match="other settings or inputs"):
        fit(_model(), _mse, (x, y), None, TrainSettings(epochs=2, batch_size=32, lr=0.5), Progress(run))
    with pytest.raises(ValueError, match="other settings or inputs"):
        fit(
            _model(),
            _mse,
            (x, y),
            None,
            TrainSettings(epochs=1, batch_size=32),
            Progress(run),
            fingerprint={"n": 1},
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs=0 must be >= 1"),
        ({"lr": 0.0}, "lr=0.0 must be > 0"),
        ({"patience": -1}, "patience=-1 must be >= 0"),
        ({"schedule": "linear"}, "schedule='linear' must be one of"),
    ],
)
def test_bad_settings_are_refused_by_name(change, message):
    x, y = _data(16)
    with pytest.raises(ValueError, match=message):
        fit(_model(), _mse, (x, y), None, TrainSettings(**change))


def test_bad_data_and_losses_get_clear_errors():
    x, y = _data(16)
    with pytest.raises(ValueError, match=r"training tensors differ in their first dimension: \[15, 16\]"):
        fit(_model(), _mse, (x[:15], y), None, TrainSettings(epochs=1))
    with pytest.raises(KeyError, match="must return a 'loss' entry"):
        fit(_model(), lambda m, b: {"mse": _mse(m, b)["loss"]}, (x, y), None, TrainSettings(epochs=1))
    with pytest.raises(FloatingPointError, match="loss term 'loss' is nan"):
        fit(
            _model(),
            lambda m, b: {"loss": _mse(m, b)["loss"] * math.nan},
            (x, y),
            None,
            TrainSettings(epochs=1),
        )


def test_predict_concatenates_batches_in_order():
    x, _ = _data(10)
    model = _model()
    out = predict(lambda b: model(b[0]), (x,), batch_size=3)
    assert out.shape == (10, 1)
    assert torch.allclose(out, model(x).detach())
