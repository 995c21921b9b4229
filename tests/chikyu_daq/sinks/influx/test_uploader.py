"""The uploader's pacing against a recording writer (no server): one request per interval while
it keeps up, a backlog sent without pause, and nothing held back at close."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chikyu_daq.sinks.influx.sink import Uploader
from chikyu_daq.sinks.influx.spool import Spool
from tests.servers import until


class Recording:
    """A writer that accepts every batch and keeps it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def write(self, body: bytes) -> None:
        self.bodies.append(body)

    async def aclose(self) -> None:
        pass


def lines(start: int, n: int) -> bytes:
    return b"".join(b"m v=%di %d\n" % (i, i) for i in range(start, start + n))


def test_keeping_up_it_sends_at_most_once_per_interval_and_flushes_at_close(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Recording()
    up = Uploader(spool, writer, idle_poll_s=0.01, min_interval_s=3600.0)

    async def main() -> None:
        task = asyncio.create_task(up.run())
        spool.append(lines(0, 3))
        up.notify()
        await until(lambda: len(writer.bodies) == 1, 10)
        for k in range(1, 6):  # more seconds of lines, each announced: all wait for the interval
            spool.append(lines(3 * k, 3))
            up.notify()
            await asyncio.sleep(0.02)
        assert len(writer.bodies) == 1
        await up.aclose()
        await task

    asyncio.run(main())
    assert writer.bodies == [lines(0, 3), lines(3, 15)]
    assert spool.empty()
    spool.close()


def test_a_backlog_is_sent_without_waiting_for_the_interval(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    writer = Recording()
    up = Uploader(spool, writer, batch_lines=10, min_interval_s=3600.0)
    spool.append(lines(0, 45))

    async def main() -> None:
        task = asyncio.create_task(up.run())
        await until(spool.empty, 10)  # full batches: no pause between them
        await up.aclose()
        await task

    asyncio.run(main())
    assert b"".join(writer.bodies) == lines(0, 45)
    assert [b.count(b"\n") for b in writer.bodies] == [10, 10, 10, 10, 5]
    spool.close()
