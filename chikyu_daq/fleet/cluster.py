"""Dask plumbing: a client on a LocalCluster or an existing scheduler, and a task map with
progress in which a failed task is reported and the others finish."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from distributed import WorkerPlugin

from chikyu_daq.fleet.runs import FleetError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One task to submit: a label for progress and errors, and the call."""

    label: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    job: Job
    result: Any = None
    error: str | None = None


class WarmKernels(WorkerPlugin):
    """Worker plugin: load the numba kernels once per worker process before its first task.

    With `cache=True` kernels compile once into the cache (NUMBA_CACHE_DIR, shared by the
    workers of one machine) and every worker loads them at start-up, not inside a timed task."""

    name = "chikyu-warm-kernels"

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)

    def setup(self, worker: Any) -> None:
        from chikyu_daq.config.model import parse_config
        from chikyu_daq.live.processor import warm_up

        warm_up(parse_config(self.config))


@contextmanager
def dask_client(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    warm_config: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A `distributed.Client`: to `scheduler` if given, else a LocalCluster of `workers`
    processes with one thread each (the kernels hold the GIL only between numba calls, and a
    replay is one long chain, so processes, not threads, give parallelism)."""
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            n = workers or os.cpu_count() or 1
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.WARNING,
            )
            client = Client(cluster)
    except OSError as err:
        raise FleetError(f"cannot reach Dask scheduler {scheduler or 'local'}: {err}") from None
    try:
        if warm_config is not None:
            client.register_plugin(WarmKernels(warm_config))
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_jobs(client: Any, jobs: list[Job], *, what: str = "runs") -> list[Outcome]:
    """Submit every job, wait for all; a job that raises is an `Outcome` with its error (logged
    as it happens), never an exception here. Outcomes come back in job order."""
    from distributed import as_completed
    from rich.progress import Progress

    futures = [
        client.submit(j.fn, *j.args, key=f"chikyu-{i}-{j.label}", pure=False, **j.kwargs)
        for i, j in enumerate(jobs)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    outcomes: list[Outcome | None] = [None] * len(jobs)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(what, total=len(jobs))
        for fut in as_completed(futures):
            i = index[fut.key]
            if fut.status == "error":
                exc = fut.exception()
                msg = f"{type(exc).__name__}: {exc}"
                log.error("%s failed: %s", jobs[i].label, msg)
                print(f"error: {jobs[i].label}: {msg}", file=sys.stderr)
                outcomes[i] = Outcome(jobs[i], error=msg)
            else:
                outcomes[i] = Outcome(jobs[i], result=fut.result())
            fut.release()
            bar.advance(task)
    return [o for o in outcomes if o is not None]
