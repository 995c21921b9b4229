"""`chikyu-daq poll`: read devices once (or N times) and print decoded channels with quality.

The field engineer's first tool on a new installation: it uses the same drivers as the daemon,
so what it prints is what the pipeline will get. `--endpoints` re-points buses (JSON text or a
file written by `hil serve --endpoints-out`, waited for if it does not exist yet).
Exit status: 0 when every channel read GOOD, 1 otherwise, 2 for a bad config.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from drivers.sample import Batch, Quality, Sample


def load_endpoints(text_or_path: str, wait_s: float) -> dict[str, Any]:
    """JSON object inline, or a file that may still be being written by `hil serve`."""
    if text_or_path.lstrip().startswith("{"):
        return dict(json.loads(text_or_path))
    path = Path(text_or_path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (FileNotFoundError, json.JSONDecodeError):
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


async def collect(
    cfg: Any, buses: Any, devices: list[str] | None, count: int, timeout_s: float
) -> tuple[dict[str, Sample], dict[str, str], dict[str, Any]]:
    """Newest sample per channel once every device delivered `count` batches (or timeout)."""
    from drivers.acquisition import Acquisition

    latest: dict[str, Sample] = {}
    seen: dict[str, int] = {}
    done = asyncio.Event()
    acq = Acquisition(buses, cfg.maps, cfg.sentences, cfg.devices, _noop, only=devices)
    wanted = set(acq.plans) | set(acq.decoders)

    async def sink(batch: Batch) -> None:
        latest.update(batch.samples)
        if not all(math.isnan(s.value) for s in batch.samples.values()):
            seen[batch.device] = seen.get(batch.device, 0) + 1
        if all(seen.get(d, 0) >= count for d in wanted):
            done.set()

    acq._sink = sink
    task = asyncio.create_task(acq.run())
    try:
        await asyncio.wait_for(done.wait(), timeout_s)
    except TimeoutError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return latest, acq.units, acq.stats()


async def _noop(batch: Batch) -> None:
    return None


def poll(
    config: Annotated[Path, typer.Option("-c", "--config", help="Installation config (TOML).")],
    device: Annotated[
        list[str] | None, typer.Option("--device", "-d", help="Only this device (repeatable).")
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, help="Readings per device before printing.")
    ] = 1,
    endpoints: Annotated[
        str | None,
        typer.Option(
            "--endpoints", help="Bus endpoints: JSON or a file from `hil serve --endpoints-out`."
        ),
    ] = None,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Read devices and print decoded channels with units and quality."""
    from chikyu_daq.config.model import load_or_exit
    from drivers.endpoints import override_buses

    cfg = load_or_exit(config)
    buses = cfg.buses
    if endpoints:
        try:
            buses = override_buses(buses, load_endpoints(endpoints, wait_s=timeout_s))
        except (OSError, ValueError, KeyError) as err:
            print(f"error: --endpoints: {err}", file=sys.stderr)
            raise SystemExit(2) from None
    try:
        latest, units, stats = asyncio.run(collect(cfg, buses, device, count, timeout_s))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    names = {int(q): q.name for q in Quality}
    if as_json:
        rows = {
            ch: {
                "value": None if math.isnan(s.value) else s.value,
                "unit": units.get(ch, ""),
                "quality": names[s.quality],
                "t_ns": s.t_ns,
            }
            for ch, s in sorted(latest.items())
        }
        print(json.dumps({"channels": rows, "stats": stats}, indent=2))
    else:
        for ch, s in sorted(latest.items()):
            print(f"{ch:32s} {s.value:>16.6g} {units.get(ch, ''):8s} {names[s.quality]}")
        for dev, st in stats["devices"].items():
            print(
                f"# {dev}: ok={st['polls_ok']} failed={st['polls_failed']} "
                f"timeouts={st['timeouts']} exceptions={st['exceptions']} "
                f"bad_frames={st['bad_frames']} "
                f"latency_mean_ms={st['latency_mean_ms']:.2f}",
                file=sys.stderr,
            )
    bad = not latest or any(s.quality != Quality.GOOD for s in latest.values())
    raise SystemExit(1 if bad else 0)
