"""Which event loop the acquisition runs on: uvloop where installed, else asyncio's own.

At the installation's ~110 Modbus transactions a second the stock selector loop polls the kernel
twice per transaction (once for the reply, once more to run the task it woke); libuv runs the
woken task in the same pass, so uvloop waits once: about 220 instead of 300 `epoll_wait` calls a
second, and 0.3-1 % of a core less for the daemon (`benchmarks/bench_live.py --loops
asyncio,uvloop`). `CHIKYU_DAQ_LOOP=asyncio` (or `run --loop asyncio`) chooses the stock loop,
e.g. to rule uvloop out when chasing a fault. On uvloop `loop.time()` and timers have 1 ms
resolution; nothing here schedules finer.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, get_args

T = TypeVar("T")
LoopName = Literal["auto", "uvloop", "asyncio"]
LOOPS: tuple[str, ...] = get_args(LoopName)
#: The environment variable that chooses the loop when no `--loop` is given.
ENV = "CHIKYU_DAQ_LOOP"


class LoopChoiceError(ValueError):
    """An unknown loop name, or uvloop asked for where it is not installed."""


def loop_factory(name: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """The factory of loop `name` (default: $CHIKYU_DAQ_LOOP, else `auto`: uvloop if it
    imports, else asyncio's)."""
    choice = (name or os.environ.get(ENV) or "auto").strip().lower()
    if choice not in LOOPS:
        raise LoopChoiceError(f"event loop {choice!r}: choose one of {', '.join(LOOPS)}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError as err:
        if choice == "uvloop":
            raise LoopChoiceError(f"event loop 'uvloop' is not installed ({err})") from err
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_kind(loop: asyncio.AbstractEventLoop) -> str:
    """'uvloop' or 'asyncio', for logs and the health record."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T], loop: str | None = None) -> T:
    """`asyncio.run` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)
