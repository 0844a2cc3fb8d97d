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

from numl_core.jobs import JobCancelled, Progress

POLL_S = 0.5


def map_members(
    fn: Callable[..., Any],
    members: Iterable[Sequence[Any]],
    scheduler: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    progress: Progress | None = None,
) -> list[Any]:
    """Call ``fn(*member)`` for every member and return the results in order.

    ``scheduler``: None runs in this process; ``"local"`` starts a LocalCluster with
    ``n_workers`` processes; any other string is a scheduler address (``tcp://host:8786``).
    ``progress`` gets the fraction of members done, and a cancel requested on it cancels the
    members still pending (raising :class:`~numl_core.jobs.JobCancelled`).
    """
    members = [tuple(m) for m in members]
    if scheduler is None:
        out = []
        for i, m in enumerate(members):
            if progress is not None:
                progress.check_cancelled()
            out.append(fn(*m))
            if progress is not None:
                progress.update((i + 1) / len(members))
        return out
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
            return _gather(client, fn, members, progress)
    with Client(scheduler) as client:
        return _gather(client, fn, members, progress)


def _gather(
    client: Any, fn: Callable[..., Any], members: list[tuple[Any, ...]], progress: Progress | None
) -> list[Any]:
    from dask.distributed import wait

    futures = [client.submit(fn, *m, pure=False) for m in members]
    pending = list(futures)
    while pending and progress is not None:
        try:
            progress.check_cancelled()
        except JobCancelled:
            client.cancel(futures)
            raise
        try:
            pending = list(wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED").not_done)
        except TimeoutError:
            continue
        progress.update(1.0 - len(pending) / len(futures))
    return client.gather(futures)
