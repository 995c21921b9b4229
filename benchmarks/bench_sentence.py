"""Densitometer parser cost on hostile streams, as JSON (issue 10 item 8).

    .venv/bin/python benchmarks/bench_sentence.py [--mb 2] [--repeat 3] [--out DIR_OR_FILE]

Feeds each stream to `SentenceParser.feed` in 1 KiB chunks (what pyserial-asyncio-fast hands
the protocol per read) and in one piece, and reports CPU milliseconds in total and per KiB
(best of `--repeat`), plus the largest single `feed` call: the longest the event loop is held.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.publish import json_path  # noqa: E402
from drivers.sentence import SentenceParser  # noqa: E402


def _line(body: str) -> bytes:
    cs = functools.reduce(lambda a, b: a ^ b, body.encode(), 0)
    return f"${body}*{cs:02X}\r\n".encode()


GOOD = _line("PDNS,1742,1050.37,9.6,52113,0000")

#: name -> stream of about `n` bytes
STREAMS: dict[str, Callable[[int], bytes]] = {
    "dollars": lambda n: b"$" * n,
    "no_newline": lambda n: b"$" + b"A" * (n - 1),
    "dollar_then_158": lambda n: (b"$" + b"A" * 158) * (n // 159),
    "bad_checksum": lambda n: GOOD.replace(b"1050", b"1051") * (n // len(GOOD)),
    "valid": lambda n: GOOD * (n // len(GOOD)),
}


def run(stream: bytes, chunk: int) -> tuple[float, float]:
    """(total CPU ms, worst single feed ms)."""
    p = SentenceParser()
    worst = 0.0
    t_all = time.process_time()
    for i in range(0, len(stream), chunk):
        t0 = time.perf_counter()
        p.feed(stream[i : i + chunk])
        worst = max(worst, time.perf_counter() - t0)
    return (time.process_time() - t_all) * 1e3, worst * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="a .json file, or a directory")
    args = ap.parse_args()
    n = int(args.mb * 1024 * 1024)
    out: dict[str, dict[str, float]] = {}
    for name, make in STREAMS.items():
        stream = make(n)
        kib = len(stream) / 1024
        for label, chunk in (("1k", 1024), ("whole", len(stream))):
            best = min((run(stream, chunk) for _ in range(args.repeat)), key=lambda r: r[0])
            out[f"{name}/{label}"] = {
                "total_ms": round(best[0], 2),
                "ms_per_kib": round(best[0] / kib, 5),
                "worst_feed_ms": round(best[1], 3),
            }
    text = json.dumps({"bytes": n, "chunk_bytes": 1024, "results": out}, indent=1)
    print(text)
    if args.out is not None:
        path = json_path(args.out, "bench_sentence.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


if __name__ == "__main__":
    main()
