"""Line-protocol lines to spool, and a full drain: shared by the spool and storage tests."""

from __future__ import annotations

from chikyu_daq.sinks.influx.spool import Spool


def lines(a: int, b: int, pad: int = 0) -> bytes:
    """Lines `a` to `b - 1` of measurement `m`, value and timestamp `i`; a `pad`-byte tag makes
    each longer (fewer lines fill a small disk)."""
    tag = b",pad=" + b"x" * pad if pad else b""
    return b"".join(b"m%s v=%di %d\n" % (tag, i, i) for i in range(a, b))


def drain(spool: Spool, max_lines: int = 7) -> bytes:
    """Everything unsent, committed batch by batch (lines waiting in memory written first); each
    batch whole lines, at most `max_lines`."""
    spool.sync()
    out = b""
    for _ in range(100_000):
        batch = spool.next_range(max_lines, 1 << 20)
        if batch is None:
            return out
        assert batch.lines <= max_lines and batch.data.endswith(b"\n")
        out += batch.data
        spool.commit(batch)
    raise AssertionError("spool never drained")
