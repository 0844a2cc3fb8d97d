"""OmniFold over many systematic throws, spread over a Dask cluster.

Every throw (and bootstrap replica) is an independent OmniFold unfolding, so the throws are
split into groups, each group is unfolded by :func:`~numl_core.unfold.omnifold.unfold_omnifold`
on a worker (batched there as usual: the same body as an unsplit run, which trains all throws in
this process), and the groups' results are merged into one
:class:`~numl_core.unfold.omnifold.OmniFoldResult`. Classifier seeds depend on the iteration,
step, trial and the throw's index in the whole ensemble, not on the group, so a split run trains the
same members as an unsplit one.

>>> from numl_core.unfold.train import classifier_training
>>> rng = np.random.default_rng(1)
>>> t = rng.normal(0, 1, (400, 1)).astype(np.float32)
>>> r = t + rng.normal(0, 0.5, t.shape).astype(np.float32)
>>> ok = np.ones(400, bool)
>>> train = classifier_training(batch_size=200, epochs=1, device="cpu")
>>> s = OmniFoldSettings(iterations=1, trials=1, hidden=(8,), train=train)
>>> w = rng.uniform(0.5, 1.5, (3, 400)).astype(np.float32)
>>> inputs = UnfoldingInputs(r, t, ok, ok, r[:200], w)
>>> unfold_omnifold_distributed(inputs, settings=s, throws_per_task=2).history.shape
(1, 2, 3, 400)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import numpy as np

from numl_core.distributed import map_members
from numl_core.jobs import Progress
from numl_core.unfold.inputs import UnfoldingInputs
from numl_core.unfold.omnifold import (
    OmniFoldResult,
    OmniFoldSettings,
    step_metric,
    unfold_omnifold,
)


def _rms_merge(values: list[float], counts: list[int]) -> float:
    """RMS over the union of groups from each group's RMS and size."""
    return float(np.sqrt(np.dot(np.square(values), counts) / np.sum(counts)))


def merge_results(parts: list[OmniFoldResult]) -> OmniFoldResult:
    """One result from results over disjoint groups of throws, in group order.

    Per-throw arrays are concatenated; the convergence RMS values are combined as RMS over all
    throws; loss curves are averaged weighted by group size over the epochs all groups ran.
    """
    if not parts:
        raise ValueError("no OmniFold results to merge")
    iterations = {p.n_iterations for p in parts}
    if len(iterations) != 1:
        raise ValueError(f"OmniFold groups ran different numbers of iterations: {sorted(iterations)}")
    counts = [p.n_throws for p in parts]
    convergence = []
    for i, first in enumerate(parts[0].convergence):
        change = _rms_merge([p.convergence[i]["change"] for p in parts], counts)
        spread = _rms_merge([p.convergence[i]["trial_spread"] for p in parts], counts)
        convergence.append({**first, "change": change, "trial_spread": spread, "converged": change < spread})
    converged_at = next((c["iteration"] for c in convergence if c["converged"]), None)
    diagnostics = [
        {
            **d,
            **{
                k: np.concatenate([p.diagnostics[j][k] for p in parts])
                for k in d
                if k not in ("iteration", "step")
            },
        }
        for j, d in enumerate(parts[0].diagnostics)
    ]
    losses = []
    for j, record in enumerate(parts[0].losses):
        merged: dict[str, Any] = {"iteration": record["iteration"], "step": record["step"]}
        for split in ("train", "val"):
            curves = [np.asarray(p.losses[j][split]) for p in parts]
            length = min(len(c) for c in curves)
            merged[split] = np.average(np.stack([c[:length] for c in curves]), axis=0, weights=counts)
        losses.append(merged)
    return OmniFoldResult(
        history=np.concatenate([p.history for p in parts], axis=2),
        trial_spread=np.concatenate([p.trial_spread for p in parts], axis=1),
        trial_weights=np.concatenate([p.trial_weights for p in parts], axis=1),
        convergence=convergence,
        converged_at=converged_at,
        diagnostics=diagnostics,
        losses=losses,
        settings=parts[0].settings,
    )


def _throws_on_cluster(
    inputs: UnfoldingInputs,
    settings: OmniFoldSettings,
    progress: Progress,
    resume: bool,
    *,
    scheduler: str | None,
    throws_per_task: int,
    n_workers: int,
) -> OmniFoldResult:
    """Unfold checked ``inputs`` in groups of ``throws_per_task`` throws, one
    :func:`~numl_core.unfold.omnifold.unfold_omnifold` task per group, and merge the groups' results.
    Tasks keep no checkpoints (``resume`` does not apply) and report no live metrics: the merged loss
    curves are reported here once all are done."""
    if settings.stop_on_convergence:
        raise ValueError("stop_on_convergence cannot be used when throws are split into tasks")
    if throws_per_task < 1:
        raise ValueError(f"throws_per_task = {throws_per_task} must be >= 1")
    groups = inputs.split_throws(throws_per_task)
    tasks = [
        (group, dataclasses.replace(settings, first_throw=settings.first_throw + k * throws_per_task))
        for k, group in enumerate(groups)
    ]
    progress.log(
        f"omnifold: {inputs.n_throws} throws in {len(tasks)} task(s) on {scheduler or 'this process'}"
    )
    parts = map_members(unfold_omnifold, tasks, scheduler=scheduler, n_workers=n_workers, progress=progress)
    merged = merge_results(parts)
    for record in merged.losses:
        for split in ("train", "val"):
            for epoch, value in enumerate(record[split]):
                progress.metric(
                    step_metric(record["step"], "loss"),
                    float(value),
                    step=epoch,
                    iteration=record["iteration"],
                    split=split,
                )
    return merged


def unfold_omnifold_distributed(
    inputs: UnfoldingInputs,
    settings: OmniFoldSettings | None = None,
    progress: Progress | None = None,
    *,
    scheduler: str | None = None,
    throws_per_task: int = 8,
    n_workers: int = 2,
) -> OmniFoldResult:
    """:func:`~numl_core.unfold.omnifold.unfold_omnifold` with the throws split into tasks of
    ``throws_per_task`` and run through :func:`~numl_core.distributed.map_members` on ``scheduler``
    (None: in this process; ``"local"``: a LocalCluster of ``n_workers``; or an address).

    Stopping on convergence is refused, since groups could stop at different iterations.
    """
    train = partial(
        _throws_on_cluster, scheduler=scheduler, throws_per_task=throws_per_task, n_workers=n_workers
    )
    return unfold_omnifold(inputs, settings, progress, resume=False, train_throws=train)
