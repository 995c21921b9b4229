"""The demo dashboard's alarm panel and its acknowledge key.

`alarm_panel(book)` lists the alarms that are not normal with their lifecycle state and
priority; `AckKey` puts the terminal in cbreak mode while the dashboard runs and, on `a`,
acknowledges every alarm waiting for it through the same command path as the CLI and MQTT
(operator: the login name).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import sys
import termios
import tty
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.panel import Panel
from rich.table import Table

from chikyu_daq.alarms.states import NORMAL, AlarmBook

if TYPE_CHECKING:
    from chikyu_daq.live.pipeline import Pipeline

STYLE = {
    "active_unacked": "[bold red]",
    "active_acked": "[yellow]",
    "cleared_unacked": "[magenta]",
    "shelved": "[cyan]",
    "suppressed": "[dim]",
    "out_of_service": "[dim]",
}


def alarm_panel(book: AlarmBook | None, acks: int = 0) -> Panel:
    table = Table.grid(padding=(0, 2))
    rows = [st for _, st in sorted(book.alarms.items()) if st.state != NORMAL] if book else []
    for st in rows:
        style = STYLE.get(st.state, "")
        table.add_row(st.name, f"{style}{st.state}[/]", st.priority)
    body: Any = table if rows else "[green]none[/]"
    hint = "a: acknowledge all" + (f" ({acks} acknowledged)" if acks else "")
    return Panel(body, title="Alarms", subtitle=hint)


class AckKey:
    """While active, pressing `a` acknowledges each unacknowledged alarm of the pipeline."""

    def __init__(self, pipeline: Callable[[], Pipeline | None]) -> None:
        self.pipeline = pipeline
        self.acks = 0
        self._fd = -1
        self._saved: Any = None

    def __enter__(self) -> AckKey:
        if not sys.stdin.isatty():
            return self
        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        asyncio.get_running_loop().add_reader(self._fd, self._key)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def _key(self) -> None:
        with contextlib.suppress(OSError):
            if os.read(self._fd, 1) in (b"a", b"A"):
                self.ack_all()

    def ack_all(self) -> None:
        p = self.pipeline()
        if p is None:
            return
        for name, st in sorted(p.interfaces.alarms.book.alarms.items()):
            if st.state in ("active_unacked", "cleared_unacked"):
                doc = {"action": "ack", "alarm": name, "operator": getpass.getuser()}
                if p.interfaces.command({**doc, "reason": "demo dashboard"}).get("accepted"):
                    self.acks += 1
