"""The OPC UA server read by asyncua's client over loopback: values, source timestamps and
status codes equal what the daemon recorded."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua

from chikyu_daq.store.events import Transition
from chikyu_daq.store.reader import open_run
from tests.iface_servers import live_pipeline, reference
from tests.servers import free_port

pytestmark = [pytest.mark.servers, pytest.mark.slow]

NAMESPACE = "urn:test:chikyu"


def _ns(dv: Any) -> int:
    """SourceTimestamp in ns (asyncua gives naive UTC datetimes)."""
    ts = dv.SourceTimestamp
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return round(ts.timestamp() * 1_000_000) * 1000


async def _until(predicate, timeout_s: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    pytest.fail(f"condition not met within {timeout_s} s")


async def _is(node: Any, value: str) -> bool:
    return bool(await node.read_value() == value)


def test_opcua_client_reads_what_the_daemon_recorded(tmp_path: Path) -> None:
    url = f"opc.tcp://127.0.0.1:{free_port()}/chikyu/"
    cfg = reference(
        **{
            "outputs.opcua": {
                "enabled": True,
                "endpoint": url,
                "namespace": NAMESPACE,
                "update_s": 0.2,
            }
        }
    )
    channels = {"ft201.volume_flow": 1, "pt302.pressure": 2, "p101a.speed": 0}
    read: dict[str, Any] = {}

    async def main() -> None:
        async with live_pipeline(cfg, tmp_path / "data") as live:
            # simulation bit: flow UNCERTAIN; sensor-fault bit: pressure BAD
            live.rig.set_fault("ft201", "status_bits", field="diagnostics", bits=0x10)
            live.rig.set_fault("pt302", "status_bits", field="status", bits=0x01)
            async with Client(url, timeout=10) as client:
                ns = await client.get_namespace_index(NAMESPACE)

                async def settled() -> bool:
                    for ch, q in channels.items():
                        dv = await client.get_node(ua.NodeId(ch, ns)).read_data_value(
                            raise_on_bad_status=False
                        )
                        want = [ua.StatusCodes.Good, ua.StatusCodes.Uncertain, ua.StatusCodes.Bad][
                            q
                        ]
                        if dv.StatusCode.value != want:
                            return False
                        read[ch] = dv
                    return True

                await _until(settled, 20)
                cum = client.get_node(ua.NodeId("results.cum_rey_kg", ns))

                async def result() -> Any:
                    # the first rows are BAD until every input has a value: a Bad status
                    # carries no value (Part 4), so wait for one that is not Bad to compare
                    dv = await cum.read_data_value(raise_on_bad_status=False)
                    return None if dv.StatusCode.is_bad() else dv

                read["results.cum_rey_kg"] = await _until(result, 10)
                state = client.get_node(ua.NodeId("alarms.SLUGGING.State", ns))
                assert await state.read_value() == "normal"
                prio = client.get_node(ua.NodeId("alarms.SLUGGING.Priority", ns))
                assert await prio.read_value() == cfg.alarm_management.priorities["SLUGGING"]
                # the BAD pressure raises SENSOR_FAULT after 2 s: its lifecycle state follows
                fault = client.get_node(ua.NodeId("alarms.SENSOR_FAULT(pt302.pressure).State", ns))
                await _until(lambda: _is(fault, "active_unacked"), 15)
                with pytest.raises(ua.UaStatusCodeError):  # read-only
                    await client.get_node(ua.NodeId("p101a.speed", ns)).write_value(1.0)
            read["run_dir"] = live.pipeline.outputs.recorder.path

    asyncio.run(main())
    run = open_run(read["run_dir"])
    raw = run.raw(list(channels))
    for ch, q in channels.items():
        t, v, qual = raw[ch]
        src = _ns(read[ch])
        i = int(np.argmin(np.abs(t - src)))
        assert abs(int(t[i]) - src) < 1000, ch  # DateTime carries microseconds
        assert int(qual[i]) == q, ch
        if q == 2:  # Part 4 7.7.1: with a Bad status the value is null on the wire
            assert read[ch].Value.Value is None, ch
        else:
            assert read[ch].Value.Value == float(v[i]), ch
    res = run.results()
    src = _ns(read["results.cum_rey_kg"])
    i = int(np.argmin(np.abs(res["t_ns"] - src)))
    assert abs(int(res["t_ns"][i]) - src) < 1000
    assert read["results.cum_rey_kg"].Value.Value == res["cum_rey_kg"][i]


def _certs(tmp: Path, name: str, uri: str, server: bool) -> tuple[Path, Path]:
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key, cert = tmp / f"{name}.pem", tmp / f"{name}.der"
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]

    async def gen() -> None:
        await setup_self_signed_certificate(key, cert, uri, "127.0.0.1", use, {"commonName": name})

    asyncio.run(gen())
    return cert, key


def test_opcua_basic256sha256_encrypts_and_refuses_plain_clients(tmp_path: Path) -> None:
    from chikyu_daq.alarms.states import AlarmBook
    from chikyu_daq.config.model import OpcUa
    from chikyu_daq.interfaces.opcua import OpcUaServer
    from chikyu_daq.live.pipeline import LiveView
    from drivers.sample import Sample

    url = f"opc.tcp://127.0.0.1:{free_port()}/chikyu/"
    s_cert, s_key = _certs(tmp_path, "server", "urn:freeopcua:python:server", True)
    c_cert, c_key = _certs(tmp_path, "client", "urn:test:client", False)
    cfg = OpcUa(
        enabled=True,
        endpoint=url,
        security_policy="Basic256Sha256",
        certificate_file=str(s_cert),
        private_key_file=str(s_key),
        namespace=NAMESPACE,
    )
    t_ns = 1_796_000_000_123_456_789
    view = LiveView(latest={"ft201.volume_flow": Sample(t_ns, 330.5, 0)})
    server = OpcUaServer(cfg, view, AlarmBook(lambda n: "low", 60.0), ["ft201.volume_flow"])

    async def main() -> None:
        await server.start()
        try:
            await server.update()
            plain = Client(url, timeout=5)
            with pytest.raises(ua.UaError, match="No matching endpoints"):  # no plain endpoint
                async with plain:
                    await plain.get_namespace_index(NAMESPACE)
            client = Client(url, timeout=10)
            client.application_uri = "urn:test:client"
            await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{c_cert},{c_key}")
            async with client:
                ns = await client.get_namespace_index(NAMESPACE)
                dv = await client.get_node(ua.NodeId("ft201.volume_flow", ns)).read_data_value()
                assert dv.Value.Value == 330.5 and dv.StatusCode.is_good()
                assert _ns(dv) == t_ns // 1000 * 1000
        finally:
            await server.aclose()

    asyncio.run(main())


# -- Part 9 conditions: the server beside a real alarm manager, asyncua's client over loopback


class _Events:
    """Subscription handler: the condition events received, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.events.append(event)


async def _conditions_server(
    tmp_path: Path, commands: bool
) -> tuple[Any, Any, list[Transition], str]:
    from chikyu_daq.alarms.manager import AlarmManager, Sinks
    from chikyu_daq.interfaces.opcua import OpcUaServer
    from chikyu_daq.live.pipeline import LiveView

    url = f"opc.tcp://127.0.0.1:{free_port()}/chikyu/"
    opc = {"enabled": True, "endpoint": url, "namespace": NAMESPACE, "commands": commands}
    cfg = reference(**{"outputs.opcua": opc})
    recorded: list[Transition] = []
    manager = AlarmManager(cfg, tmp_path, Sinks(record=recorded.append), time.time_ns())
    server = OpcUaServer(
        cfg.outputs.opcua,
        LiveView(),
        manager.book,
        [],
        command=lambda doc: manager.command(doc, time.time_ns()),
    )
    await server.start()
    return server, manager, recorded, url


def test_alarm_is_a_part9_condition_acknowledged_through_the_manager(tmp_path: Path) -> None:
    from dsp.alarms import AlarmEvent

    async def main() -> None:
        server, manager, recorded, url = await _conditions_server(tmp_path, commands=True)
        name = sorted(manager.book.alarms)[0]
        try:
            async with Client(url, timeout=10) as client:
                ns = await client.get_namespace_index(NAMESPACE)
                cond = client.get_node(ua.NodeId(f"conditions.{name}", ns))
                tdef = await cond.read_type_definition()
                assert tdef == ua.NodeId(ua.ObjectIds.AlarmConditionType)
                handler = _Events()
                sub = await client.create_subscription(50, handler)
                await sub.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
                # the processor raises the alarm: the manager's transition fires the event
                t = time.time_ns()
                manager.on_events([AlarmEvent(t, name, "raise", 1.0)], [name], t)
                await server.update()

                async def raised() -> Any:
                    got = [e for e in handler.events if e.SourceName == name]
                    return got[-1] if got else None

                ev = await _until(raised, 10)
                assert ev.ConditionName == name and ev.Retain is True
                assert getattr(ev, "ActiveState/Id") is True
                assert getattr(ev, "AckedState/Id") is False
                severity = {"low": 250, "medium": 500, "high": 750, "critical": 1000}
                assert ev.Severity == severity[manager.book.get(name).priority]
                active = await cond.get_child(["0:ActiveState", "0:Id"])
                assert await active.read_value() is True
                # ConditionRefresh re-sends the retained condition
                n = len(handler.events)
                refresh = client.get_node(ua.NodeId(ua.ObjectIds.ConditionType))
                await refresh.call_method(
                    ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
                    ua.Variant(sub.subscription_id, ua.VariantType.UInt32),
                )
                await _until(
                    lambda: _true(any(e.SourceName == name for e in handler.events[n:])), 10
                )
                # a reason is required
                with pytest.raises(ua.UaStatusCodeError):
                    await cond.call_method("0:Acknowledge", b"", ua.LocalizedText(""))
                assert manager.book.get(name).acked is False
                await cond.call_method("0:Acknowledge", b"", ua.LocalizedText("seen on deck"))
                st = manager.book.get(name)
                assert st.active and st.acked
                acks = [e for e in recorded if e.cause == "ack" and e.name == name]
                assert acks and acks[-1].operator == "opcua"
                assert acks[-1].reason == "seen on deck"
                acked = await cond.get_child(["0:AckedState", "0:Id"])
                assert await acked.read_value() is True
                # shelving: the comment-less method is refused, TimedShelve2 goes to the manager
                shelving = await cond.get_child("0:ShelvingState")
                with pytest.raises(ua.UaStatusCodeError):
                    await shelving.call_method("0:OneShotShelve")
                await shelving.call_method(
                    ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_TimedShelve2),
                    ua.Variant(60_000.0, ua.VariantType.Double),
                    ua.LocalizedText("pump maintenance"),
                )
                st = manager.book.get(name)
                assert st.shelve is not None and st.shelve.operator == "opcua"
                assert st.shelve.until_ns - st.shelve.since_ns == 60 * 10**9
                assert [e for e in recorded if e.cause == "shelve"]
                current = await shelving.get_child("0:CurrentState")
                assert (await current.read_value()).Text == "TimedShelved"
                await shelving.call_method(
                    ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_Unshelve2),
                    ua.LocalizedText("maintenance done"),
                )
                assert manager.book.get(name).shelve is None
                assert (await current.read_value()).Text == "Unshelved"
                await sub.delete()
        finally:
            await server.aclose()

    asyncio.run(main())


def test_acknowledge_refused_when_commands_are_off(tmp_path: Path) -> None:
    from dsp.alarms import AlarmEvent

    async def main() -> None:
        server, manager, recorded, url = await _conditions_server(tmp_path, commands=False)
        name = sorted(manager.book.alarms)[0]
        try:
            t = time.time_ns()
            manager.on_events([AlarmEvent(t, name, "raise", 1.0)], [name], t)
            await server.update()
            async with Client(url, timeout=10) as client:
                ns = await client.get_namespace_index(NAMESPACE)
                cond = client.get_node(ua.NodeId(f"conditions.{name}", ns))
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await cond.call_method("0:Acknowledge", b"", ua.LocalizedText("no"))
                shelving = await cond.get_child("0:ShelvingState")
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    await shelving.call_method(
                        ua.NodeId(ua.ObjectIds.ShelvedStateMachineType_OneShotShelve2),
                        ua.LocalizedText("no"),
                    )
            assert manager.book.get(name).acked is False
            assert manager.book.get(name).shelve is None
            assert not [e for e in recorded if e.cause in ("ack", "shelve")]
        finally:
            await server.aclose()

    asyncio.run(main())


async def _true(value: bool) -> bool:
    return value
