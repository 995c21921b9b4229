"""Once the kernels are loaded, the start-up heap is out of the cyclic collector's reach: a full
collection in the steady state walks only what the steady state allocated (an ~90 ms stall of
the event loop every couple of minutes before)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# In a fresh interpreter: freezing is process-wide and must not reach the test process's heap.
PROBE = """
import asyncio, gc, json
from chikyu_daq.config.model import load_config
from chikyu_daq.live.pipeline import KernelWarmup

async def main():
    warmup = KernelWarmup(load_config("config/reference.toml"))
    warmup.compiled.set()  # as when the helper process has filled the cache
    tracked = len(gc.get_objects())
    assert warmup.load()
    print(json.dumps({"tracked": tracked, "frozen": gc.get_freeze_count(),
                      "walked": len(gc.get_objects())}))

asyncio.run(main())
"""


def test_loading_the_kernels_freezes_the_start_up_heap() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    # what was alive before the load (and the kernels it brought) is frozen, not walked
    assert seen["frozen"] >= seen["tracked"] // 2, seen
    assert seen["walked"] < seen["tracked"] // 10, seen
