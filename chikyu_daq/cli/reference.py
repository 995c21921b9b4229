"""`chikyu-daq seawater-reference`: tell the running daemon the densitometer sees seawater now.

    chikyu-daq seawater-reference --for 120 --operator sato --reason "intake closed" -c cfg.toml

The daemon learns the densitometer's offset from TEOS-10 over the next `--for` seconds if no mud
is taken and the reading is steady, else refuses it with the reason (`ref_cmd_state` in the
yield feed, and its log). Same socket and exit status as `chikyu-daq alarms`
(`chikyu_daq.cli.control`): 0 accepted, 1 rejected (the reason is printed), 3 no daemon
answering.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chikyu_daq.cli.control import ConfigOpt, DataDirOpt, JsonOpt, OperatorOpt, ReasonOpt, send


def seawater_reference(
    for_s: Annotated[float, typer.Option("--for", help="Seconds of seawater from now.")],
    operator: OperatorOpt,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Command a seawater reference of the densitometer over the next --for seconds."""
    from chikyu_daq.interfaces.commands import ACTION

    doc = {"action": ACTION, "operator": operator, "reason": reason, "duration_s": for_s}

    def accepted(reply: dict[str, Any]) -> None:
        print(f"seawater reference commanded for {reply['duration_s']:g} s")

    send(config, data_dir, doc, as_json, accepted)
