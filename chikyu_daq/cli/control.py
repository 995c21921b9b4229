"""One command to the running daemon's control socket, as `alarms` and `seawater-reference` send
it: the socket is `<data_dir>/<[alarm_management] control_socket>` (`--data-dir` overrides the
config's data directory as it does for `run`); exit status 0 accepted, 1 rejected (the reason
is printed), 3 no daemon answering.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

ConfigOpt = Annotated[
    Path | None, typer.Option("-c", "--config", help="Installation config (TOML).")
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="The daemon's data directory (overrides -c).")
]
OperatorOpt = Annotated[str, typer.Option("--operator", help="Who does it (recorded).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the daemon's reply as JSON.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (required, recorded).")]


def control_socket(config: Path | None, data_dir: Path | None) -> Path:
    """The daemon's control socket, from the config and/or the data directory."""
    from chikyu_daq.config.model import AlarmManagement, load_or_exit

    am = AlarmManagement()
    if config is not None:
        cfg = load_or_exit(config)
        am = cfg.alarm_management
        data_dir = data_dir or Path(cfg.site.data_dir)
    if data_dir is None:
        raise typer.BadParameter("give -c CONFIG or --data-dir", param_hint="-c")
    return data_dir / am.control_socket


def send(
    config: Path | None,
    data_dir: Path | None,
    doc: dict[str, Any],
    as_json: bool,
    accepted: Callable[[dict[str, Any]], None],
) -> NoReturn:
    """Send `doc`, print the reply (as JSON, a rejection's reason, or `accepted(reply)`) and
    exit with the status above."""
    from chikyu_daq.alarms.control import ControlError, request

    try:
        reply = request(control_socket(config, data_dir), doc)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    if as_json:
        print(json.dumps(reply, indent=2, default=str))
    elif not reply.get("accepted"):
        print(f"rejected: {reply.get('reason')}", file=sys.stderr)
    else:
        accepted(reply)
    raise SystemExit(0 if reply.get("accepted") else 1)
