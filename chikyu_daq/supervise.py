"""Degrade, never die: long-lived tasks restarted with backoff, per-step faults counted.

    sup = Supervisor()
    sup.start("collector", pipeline._collector)   # a factory: each restart calls it again
    ...
    sup.stop()                                     # shutting down: what ends now stays ended
    await sup.join()

A supervised task that raises (or returns, or is cancelled from within) is logged with its
traceback, counted (`failures`, `restarts`, `last_error`) and started again after a backoff
that doubles from `backoff_min_s` up to `backoff_max_s` and resets once a run lasted
`healthy_s`. Only a `FatalError` — something a restart cannot fix — ends the supervisor, and
with it the pipeline (exit non-zero). `Faults` counts failures of one step (a worker tick, a
sink write) that the caller survives by skipping that step: logged with a traceback the first
time and then at most once per `log_every_s` per step, so a fault repeating at 20 Hz cannot
flood the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: A task that failed this many times without a healthy run in between is in a crash loop.
CRASH_LOOP = 3


class FatalError(Exception):
    """A failure that restarting the task cannot fix: the supervisor gives up."""


def describe(exc: BaseException) -> str:
    """`Type: message`, short enough for a status line."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass
class Backoff:
    """The wait after each failure in a row: `min_s`, doubling up to `max_s`; `reset()` after a
    success."""

    min_s: float
    max_s: float
    wait_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.wait_s = self.min_s

    def next(self) -> float:
        """The wait now; the one after it is doubled (capped)."""
        wait, self.wait_s = self.wait_s, min(self.wait_s * 2.0, self.max_s)
        return wait

    def reset(self) -> None:
        self.wait_s = self.min_s


#: The `TaskState` fields that `stats()` publishes.
PUBLISHED = ("up", "failures", "restarts", "consecutive_failures", "last_error")


@dataclass
class TaskState:
    """What `stats()` publishes for one supervised task."""

    name: str
    up: bool = False
    failures: int = 0
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str = ""
    last_failure_ns: int = 0
    started: float = 0.0  # monotonic time of the current run

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PUBLISHED}


@dataclass(kw_only=True, eq=False)
class Supervisor:
    """Restarts each supervised task after a `Backoff(backoff_min_s, backoff_max_s)`; a run of
    `healthy_s` resets it."""

    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    healthy_s: float = 60.0
    states: dict[str, TaskState] = field(default_factory=dict, init=False)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def start(
        self,
        name: str,
        factory: Callable[[], Awaitable[Any]],
        *,
        backoff_max_s: float | None = None,
    ) -> asyncio.Task[None]:
        """Run `factory()` under supervision in a task named `name`."""
        if name in self.tasks:
            raise ValueError(f"task {name!r} is already supervised")
        state = self.states[name] = TaskState(name)
        cap = self.backoff_max_s if backoff_max_s is None else backoff_max_s
        task = asyncio.create_task(self._supervise(state, factory, cap), name=name)
        self.tasks[name] = task
        return task

    def stop(self) -> None:
        """From now on a task that ends stays ended; backoff waits end at once."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def _supervise(
        self, st: TaskState, factory: Callable[[], Awaitable[Any]], cap_s: float
    ) -> None:
        backoff = Backoff(self.backoff_min_s, cap_s)
        while not self.stopping:
            started = st.started = time.monotonic()
            st.up = True
            try:
                await factory()
            except FatalError:
                log.critical("task %s failed fatally", st.name, exc_info=True)
                raise
            except asyncio.CancelledError as exc:
                me = asyncio.current_task()
                if self.stopping or (me is not None and me.cancelling()):
                    raise  # we were cancelled: shutting down
                error: BaseException = exc  # cancelled from within: restart like a failure
            except Exception as exc:
                error = exc
            else:
                if self.stopping:
                    return
                error = RuntimeError(f"task {st.name} returned while the pipeline runs")
            finally:
                st.up = False
            if self.stopping:
                log.warning("task %s ended while stopping: %s", st.name, describe(error))
                return
            if time.monotonic() - started >= self.healthy_s:
                backoff.reset()
                st.consecutive_failures = 0
            wait_s = backoff.next()
            st.failures += 1
            st.consecutive_failures += 1
            st.last_error = describe(error)
            st.last_failure_ns = time.time_ns()
            log.error(
                "task %s failed (%d in a row, %d in all); restarting in %.1f s",
                st.name,
                st.consecutive_failures,
                st.failures,
                wait_s,
                exc_info=error,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait_s)
            if self.stopping:
                return
            st.restarts += 1
            log.warning("task %s restarted (restart %d)", st.name, st.restarts)

    # -- health -----------------------------------------------------------------------------
    def alive(self) -> bool:
        """Every supervisor still runs (a task may be between restarts)."""
        return bool(self.tasks) and not any(t.done() for t in self.tasks.values())

    def _unsettled(self) -> list[TaskState]:
        """Tasks that failed and have not run `healthy_s` since."""
        now = time.monotonic()
        return [
            s
            for s in self.states.values()
            if s.consecutive_failures and (not s.up or now - s.started < self.healthy_s)
        ]

    def crash_looping(self) -> list[str]:
        """Tasks that failed `CRASH_LOOP` times in a row without a healthy run between."""
        return [s.name for s in self._unsettled() if s.consecutive_failures >= CRASH_LOOP]

    def down(self) -> list[str]:
        return [s.name for s in self.states.values() if not s.up]

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: s.as_dict() for name, s in self.states.items()}

    def summary(self) -> str:
        """For systemd STATUS: empty when every task is up and none has failed recently."""
        return "; ".join(
            f"{s.name} {'restarting' if not s.up else 'recovering'} after {s.consecutive_failures} "
            f"failure{'s' if s.consecutive_failures > 1 else ''} ({s.last_error})"
            for s in self._unsettled()
        )

    async def join(self, names: list[str] | None = None) -> None:
        """Wait for the named tasks (all by default) to end; their errors are already logged."""
        for name, task in self.tasks.items():
            if names is None or name in names:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def cancel(self, names: list[str] | None = None) -> None:
        for name, task in self.tasks.items():
            if names is None or name in names:
                task.cancel()


@dataclass
class StepFaults:
    count: int = 0
    last_error: str = ""
    logged_at: float = -1e18
    unlogged: int = 0


class Faults:
    """Failures of steps the caller survives by skipping them, counted per step."""

    def __init__(self, log_every_s: float = 60.0, logger: logging.Logger | None = None) -> None:
        self.log_every_s = log_every_s
        self.steps: dict[str, StepFaults] = {}
        self._log = logger or log

    def record(self, step: str, exc: BaseException, consequence: str) -> None:
        """Count `exc` against `step`; log it (traceback the first time), rate-limited."""
        s = self.steps.setdefault(step, StepFaults())
        s.count += 1
        s.last_error = describe(exc)
        now = time.monotonic()
        if now - s.logged_at < self.log_every_s:
            s.unlogged += 1
            return
        first = s.count == 1
        self._log.error(
            "%s failed (%d in all, %d since the last report): %s; %s",
            step,
            s.count,
            s.unlogged + 1,
            s.last_error,
            consequence,
            exc_info=exc if first else None,
        )
        s.logged_at, s.unlogged = now, 0

    def total(self) -> int:
        return sum(s.count for s in self.steps.values())

    def stats(self) -> dict[str, dict[str, Any]]:
        return {k: {"count": s.count, "last_error": s.last_error} for k, s in self.steps.items()}
