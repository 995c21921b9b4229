"""`chikyu-daq alarms list|ack|shelve|unshelve`: talk to the running daemon's control socket.

    chikyu-daq alarms list -c config/reference.toml
    chikyu-daq alarms ack SLUGGING --operator sato --reason "seen" -c config/reference.toml
    chikyu-daq alarms shelve PUMP_SURGE --operator ito --reason "VFD work" --for 3600 -c ...

The socket and the exit status: `chikyu_daq.cli.control`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from chikyu_daq.cli.control import ConfigOpt, DataDirOpt, JsonOpt, OperatorOpt, ReasonOpt, send

AlarmArg = Annotated[str, typer.Argument(help="Alarm name, e.g. SLUGGING.")]


def _accepted(reply: dict[str, Any]) -> None:
    if "alarms" in reply:
        _print_list(reply)
    else:
        st = reply["state"]
        print(f"{st['name']}: {st['state']}")


def _print_list(reply: dict[str, Any]) -> None:
    print(f"{'alarm':<34} {'state':<16} {'priority':<9} detail")
    for st in reply["alarms"]:
        detail = ""
        if st.get("shelve"):
            sh = st["shelve"]
            detail = f"by {sh['operator']}: {sh['reason']}"
        elif st.get("suppressed"):
            detail = st["suppressed"]
        elif st.get("out_of_service"):
            detail = st["out_of_service"]
        print(f"{st['name']:<34} {st['state']:<16} {st['priority']:<9} {detail}")
    k = reply["kpis"]
    print(
        f"KPIs: {k['alarms_per_10min']:.2f} alarms/10 min (peak {k['peak_per_10min']}), "
        f"floods {k['flood_periods']}, chattering {k['chattering']}, stale {k['stale']}"
    )


def alarms_list(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False
) -> None:
    """Every alarm's lifecycle state and the alarm-system KPIs."""
    send(config, data_dir, {"action": "list"}, as_json, _accepted)


def _command(action: str, alarm: str, operator: str, **fields: Any) -> dict[str, Any]:
    """A command about `alarm`; the options left unset (None, False) are not sent."""
    doc: dict[str, Any] = {"action": action, "alarm": alarm, "operator": operator}
    doc.update({k: v for k, v in fields.items() if v is not None and v is not False})
    return doc


def alarms_ack(
    alarm: AlarmArg,
    operator: OperatorOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Acknowledge an active or returned alarm."""
    doc = _command("ack", alarm, operator, reason=reason or None)
    send(config, data_dir, doc, as_json, _accepted)


def alarms_shelve(
    alarm: AlarmArg,
    operator: OperatorOpt,
    reason: ReasonOpt,
    for_s: Annotated[
        float | None, typer.Option("--for", help="Seconds (at most the max shelve time).")
    ] = None,
    one_shot: Annotated[
        bool, typer.Option("--one-shot", help="Until the alarm clears (or the max shelve time).")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Shelve an alarm: out of the operator's list for a while, then it returns."""
    doc = _command("shelve", alarm, operator, reason=reason, duration_s=for_s, one_shot=one_shot)
    send(config, data_dir, doc, as_json, _accepted)


def alarms_unshelve(
    alarm: AlarmArg,
    operator: OperatorOpt,
    reason: ReasonOpt,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Return a shelved alarm to the operator's list now."""
    send(config, data_dir, _command("unshelve", alarm, operator, reason=reason), as_json, _accepted)
