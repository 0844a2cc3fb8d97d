"""Events of the ``sample`` action drawn in seeded shards, in this process or on a Dask cluster.

A request of ``n_generate`` events is split into shards of ``shard_events`` (the last one smaller). Every
shard draws from the flow on its own: its chunks' seeds hash (seed, shard, chunk) (:func:`shard_seed`), so a
shard's events do not depend on where or after which other shard it runs. In importance mode every shard
caps the weights at the same value and unweights (hit-or-miss) with the same w_max, both fixed once from a
seeded pilot sample before the shards start (:func:`pilot_hit_or_miss`); a shard returns its events and the
number, sum and sum of squares of all its draws' (uncapped) weights. The shards combine exactly: their events
concatenated in shard order, the flux-averaged cross section from the summed sums (:meth:`CrossSection.of`).

:func:`draw_events` runs :func:`draw_shard` over the shards through
:func:`~numl_core.distributed.map_members`, in order in this process without a scheduler, so a run here and
one on a cluster are the same computation. Each task loads the flow from ``flow_file``: on a remote cluster
that path must be readable by the workers.

>>> shard_sizes(250, 100)
[100, 100, 50]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numl_core.data.generators import exclusive_1p1h as ex
from numl_core.device import resolve_device
from numl_core.distributed import map_members
from numl_core.generator import sampling as smp
from numl_core.generator.config import GeneratorConfig, build_model
from numl_core.generator.model import GeneratorFlow, load_flow
from numl_core.jobs import Progress

#: Flow draws per chunk of a shard.
SAMPLE_CHUNK = 100_000
#: Seed streams of :func:`shard_seed`: a chunk's flow draws, its hit-or-miss, the pilot sample.
DRAWS, HIT_OR_MISS, PILOT = 0, 1, 2

#: The flux, the conditioning-parameter values and the energy proposal (None: the flux) of a request.
Setup = tuple[ex.Flux, dict[str, float], ex.Flux | None]


@dataclass(frozen=True)
class CrossSection:
    """A flux-averaged total cross section [cm^2 per nucleus] and its statistical error, estimated as the
    mean of importance weights f / q x flux / energy proposal (:mod:`~numl_core.generator.sampling`)."""

    value: float
    error: float

    @classmethod
    def of(cls, n: int, sum_w: float, sum_w2: float) -> CrossSection:
        """From the number of weights, their sum and their sum of squares: the mean and std(w) / sqrt(n)
        with the sample standard deviation, as :func:`~numl_core.generator.sampling.relative_integral_error`.

        >>> w = np.array([0.0, 1.0, 1.0, 2.0])
        >>> sigma = CrossSection.of(4, w.sum(), (w**2).sum())
        >>> sigma.value, round(sigma.error, 12) == round(smp.relative_integral_error(w), 12)
        (1.0, True)
        """
        mean = float(sum_w / n)
        return cls(mean, math.sqrt(max(float(sum_w2) / n - mean**2, 0.0) / max(n - 1, 1)))


def shard_seed(seed: int, shard: int, chunk: int = 0, stream: int = DRAWS) -> int:
    """The seed of one stream (:data:`DRAWS`, :data:`HIT_OR_MISS`, :data:`PILOT`) of one chunk of one shard:
    numpy's ``SeedSequence`` hash of (seed, stream, shard, chunk), so no two chunks share a stream.

    >>> shard_seed(7, 1) == shard_seed(7, 1) != shard_seed(7, 2) != shard_seed(8, 2)
    True
    """
    return int(np.random.SeedSequence([seed, stream, shard, chunk]).generate_state(1)[0])


def shard_sizes(n_events: int, shard_events: int) -> list[int]:
    """The events each shard writes: ``shard_events`` each, the last one the rest."""
    return [min(shard_events, n_events - start) for start in range(0, n_events, shard_events)]


def _flow_sample(
    flow: GeneratorFlow, n: int, seed: int, setup: Setup, target: ex.ExclusiveModel | None
) -> smp.WeightedSample:
    flux, params, energies = setup
    return smp.sample_flow(flow, n, flux, seed, params, target, energies=energies)


def _chunk_size(remaining: int, weighted: bool) -> int:
    """Draws for ``remaining`` events: importance mode keeps a fraction of them, emulator mode all."""
    return min(SAMPLE_CHUNK, max(5_000, 5 * remaining) if weighted else remaining)


@dataclass(frozen=True)
class HitOrMiss:
    """The weight ``cap`` and the ``w_max`` that every shard of a request unweights with."""

    cap: float
    w_max: float

    def events(self, sample: smp.WeightedSample, w: np.ndarray, seed: int) -> pd.DataFrame:
        """The sample's events kept by hit-or-miss on their weights ``w`` capped at ``cap``, with their
        over-weights max(1, w / w_max) as the ``weight`` column."""
        keep, resid = smp.unweight(np.minimum(w, self.cap), self.w_max, seed)
        return smp.events_frame(sample.x[keep], sample.enu[keep], resid)


def pilot_hit_or_miss(
    config: GeneratorConfig, flow: GeneratorFlow, model: ex.ExclusiveModel, setup: Setup
) -> HitOrMiss:
    """The cap (``cap_quantile`` of the weights) and the robust w_max
    (:func:`~numl_core.generator.sampling.unweighting_efficiency` of the capped weights) of a seeded pilot
    sample as large as a shard's first chunk; the pilot's draws are used for nothing else."""
    n = _chunk_size(config.n_generate, weighted=True)
    pilot = _flow_sample(flow, n, shard_seed(config.seed, 0, stream=PILOT), setup, model)
    capped = smp.cap_weights(pilot.weights, config.cap_quantile)
    return HitOrMiss(capped.cap, smp.unweighting_efficiency(capped.weights, seed=config.seed).w_max)


@dataclass(frozen=True)
class ShardPlan:
    """What every shard of one request shares (sent to each task): the ``config`` as a dict (its
    ``flow_file`` as an absolute path, loaded in the task), the :data:`Setup` and, in importance mode, the
    :class:`HitOrMiss` (None: emulator mode)."""

    config: dict[str, Any]
    setup: Setup
    hit_or_miss: HitOrMiss | None


@dataclass(frozen=True)
class Shard:
    """One shard's ``events`` and the number ``n_drawn``, sum ``sum_w`` and sum of squares ``sum_w2`` of all
    its draws' uncapped weights (sums 0 in emulator mode)."""

    events: pd.DataFrame
    n_drawn: int
    sum_w: float
    sum_w2: float


def _task_flow(config: GeneratorConfig) -> GeneratorFlow:
    flow, _ = load_flow(config.flow_file, domain="exclusive_1p1h")
    return flow.to(resolve_device(config.device))


def draw_shard(plan: ShardPlan, index: int, n_events: int) -> Shard:
    """Shard ``index``: ``n_events`` events drawn in chunks seeded by :func:`shard_seed` (importance mode:
    unweighted by the plan's :class:`HitOrMiss`)."""
    config = GeneratorConfig.from_dict(plan.config)
    flow, hit_or_miss = _task_flow(config), plan.hit_or_miss
    target = None if hit_or_miss is None else build_model(config)
    frames, kept, drawn, sums = [], 0, 0, np.zeros(2)
    while kept < n_events:
        chunk = _chunk_size(n_events - kept, target is not None)
        s = _flow_sample(flow, chunk, shard_seed(config.seed, index, len(frames)), plan.setup, target)
        drawn += chunk
        if hit_or_miss is None:
            frames.append(smp.events_frame(s.x, s.enu))
        else:
            w = s.weights
            sums += (w.sum(), (w**2).sum())
            frames.append(hit_or_miss.events(s, w, shard_seed(config.seed, index, len(frames), HIT_OR_MISS)))
        kept += len(frames[-1])
    return Shard(pd.concat(frames, ignore_index=True).iloc[:n_events], drawn, *map(float, sums))


def combine_shards(shards: list[Shard], weighted: bool) -> tuple[pd.DataFrame, int, CrossSection | None]:
    """The shards' events in shard order, their draws and (``weighted``) the cross section of all draws."""
    events = pd.concat([s.events for s in shards], ignore_index=True)
    n_drawn = sum(s.n_drawn for s in shards)
    if not weighted:
        return events, n_drawn, None
    sum_w, sum_w2 = sum(s.sum_w for s in shards), sum(s.sum_w2 for s in shards)
    return events, n_drawn, CrossSection.of(n_drawn, sum_w, sum_w2)


def shard_plan(
    config: GeneratorConfig, flow: GeneratorFlow, model: ex.ExclusiveModel, setup: Setup
) -> ShardPlan:
    """The plan of a request (importance mode: with its pilot's :class:`HitOrMiss`)."""
    hit_or_miss = None if config.sample_mode == "emulator" else pilot_hit_or_miss(config, flow, model, setup)
    plan_config = {**config.to_dict(), "flow_file": str(Path(config.flow_file).resolve())}
    return ShardPlan(plan_config, setup, hit_or_miss)


def draw_events(
    config: GeneratorConfig,
    progress: Progress,
    flow: GeneratorFlow,
    model: ex.ExclusiveModel,
    setup: Setup,
    n_workers: int = 2,
) -> tuple[pd.DataFrame, int, CrossSection | None]:
    """``n_generate`` events in shards of ``shard_events`` on ``config.scheduler`` (empty: this process;
    ``"local"``: a LocalCluster of ``n_workers``), each conditioning parameter as a column; returns them, the
    shards' flow draws and, in importance mode, the cross section of all those draws."""
    plan = shard_plan(config, flow, model, setup)
    sizes = shard_sizes(config.n_generate, config.shard_events)
    where = config.scheduler or "this process"
    progress.update(0.0, f"{config.n_generate} events in {len(sizes)} shard(s) on {where}")
    shards = map_members(
        draw_shard,
        [(plan, i, n) for i, n in enumerate(sizes)],
        scheduler=config.scheduler or None,
        n_workers=n_workers,
        progress=progress,
    )
    events, n_drawn, sigma = combine_shards(shards, plan.hit_or_miss is not None)
    for name, value in setup[1].items():
        events[name] = value
    return events, n_drawn, sigma
