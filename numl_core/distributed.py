"""Optional Dask backend for independent ensemble members (throws, trials, bootstrap replicas).

On one machine numl batches ensemble members on one device; to spread them over many
machines (e.g. dask-jobqueue on HTCondor), give a scheduler address, or ``"local"`` for a
``LocalCluster`` on this machine. ``dask.distributed`` is an optional dependency
(``pip install numl[dask]``).

>>> map_members(pow, [(2, 3), (3, 2)])   # no scheduler: runs here, in order
[8, 9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any


def map_members(
    fn: Callable[..., Any],
    members: Iterable[Sequence[Any]],
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
) -> list[Any]:
    """Call ``fn(*member)`` for every member and return the results in order.

    ``scheduler``: None runs in this process; ``"local"`` starts a LocalCluster with
    ``n_workers`` processes; any other string is a scheduler address (``tcp://host:8786``).
    """
    members = [tuple(m) for m in members]
    if scheduler is None:
        return [fn(*m) for m in members]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the Dask backend needs dask.distributed: pip install 'numl[dask]'") from exc
    if scheduler == "local":
        with (
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            return _gather(client, fn, members)
    with Client(scheduler) as client:
        return _gather(client, fn, members)


def _gather(client: Any, fn: Callable[..., Any], members: list[tuple[Any, ...]]) -> list[Any]:
    futures = [client.submit(fn, *m, pure=False) for m in members]
    return client.gather(futures)
