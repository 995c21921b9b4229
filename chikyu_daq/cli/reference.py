"""`chikyu-daq seawater-reference`: tell the running daemon the densitometer sees seawater now.

    chikyu-daq seawater-reference --for 120 --operator sato --reason "intake closed" -c cfg.toml

The daemon learns the densitometer's offset from TEOS-10 over the next `--for` seconds if no mud
is taken and the reading is steady, else refuses it with the reason (`ref_cmd_state` in the
yield feed, and its log). Same socket and exit status as `chikyu-daq alarms`: 0 accepted,
1 rejected (the reason is printed), 3 no daemon answering.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from chikyu_daq.cli.alarms import ConfigOpt, DataDirOpt, JsonOpt, OperatorOpt, ReasonOpt, _socket


def seawater_reference(
    for_s: Annotated[float, typer.Option("--for", help="Seconds of seawater from now.")],
    operator: OperatorOpt,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Command a seawater reference of the densitometer over the next --for seconds."""
    from chikyu_daq.alarms.control import ControlError, request
    from chikyu_daq.interfaces.commands import ACTION

    doc = {"action": ACTION, "operator": operator, "reason": reason, "duration_s": for_s}
    try:
        reply = request(_socket(config, data_dir), doc)
    except ControlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(3) from None
    if as_json:
        print(json.dumps(reply, indent=2, default=str))
    elif reply.get("accepted"):
        print(f"seawater reference commanded for {reply['duration_s']:g} s")
    else:
        print(f"rejected: {reply.get('reason')}", file=sys.stderr)
    raise SystemExit(0 if reply.get("accepted") else 1)
