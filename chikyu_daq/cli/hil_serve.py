"""`chikyu-daq hil serve`: every device of a config emulated on loopback until Ctrl-C/SIGTERM.

Prints the endpoints as one JSON line (and writes them to `--endpoints-out` atomically), the
shape `chikyu-daq poll --endpoints` and `drivers.endpoints.override_buses` take:
    chikyu-daq hil serve -c config/reference.toml --endpoints-out rig.json &
    chikyu-daq poll -c config/reference.toml --endpoints rig.json
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Annotated

import typer


async def serve(cfg: object, endpoints_out: Path | None, base_port: int, pty: list[str]) -> None:
    from hil.emulators.rig import Rig

    buses = list(getattr(cfg, "buses", {}))
    ports = {b: base_port + i for i, b in enumerate(buses)} if base_port else {}
    rig = Rig(cfg, ports=ports, modes=dict.fromkeys(pty, "pty"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with rig:
        text = json.dumps(rig.endpoints)
        if endpoints_out is not None:
            tmp = endpoints_out.with_name(endpoints_out.name + ".tmp")
            tmp.write_text(text + "\n", encoding="utf-8")
            os.replace(tmp, endpoints_out)
        print(text, flush=True)
        await stop.wait()
    if endpoints_out is not None:
        with contextlib.suppress(FileNotFoundError):
            endpoints_out.unlink()


def hil_serve(
    config: Annotated[Path, typer.Option("-c", "--config", help="Installation config (TOML).")],
    endpoints_out: Annotated[
        Path | None, typer.Option("--endpoints-out", help="Also write the endpoints JSON here.")
    ] = None,
    base_port: Annotated[
        int,
        typer.Option(
            "--base-port", help="Consecutive ports from here, one per bus (0: free ports)."
        ),
    ] = 0,
    pty: Annotated[
        list[str] | None,
        typer.Option("--pty", help="Serve this bus on a pseudo-terminal (repeatable)."),
    ] = None,
) -> None:
    """Emulate every device of CONFIG on loopback and print the endpoints as JSON."""
    from chikyu_daq.config.model import load_or_exit

    cfg = load_or_exit(config)
    unknown = set(pty or ()) - set(cfg.buses)
    if unknown:
        raise typer.BadParameter(f"no such bus(es): {sorted(unknown)}", param_hint="--pty")
    asyncio.run(serve(cfg, endpoints_out, base_port, list(pty or ())))
