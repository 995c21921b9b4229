"""The transport's register decode against pymodbus' own, on any bytes a device may send."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU

from drivers.modbus_transport import _decoder


def _decode(decoder: DecodePDU, fc: int, body: bytes) -> tuple[str, object]:
    framer = FramerSocket(decoder)
    frame = framer.encode(bytes([fc]) + body, 1, 7)
    try:
        used, pdu = framer.handleFrame(frame, 1, 7)
    except ModbusIOException as err:
        return "refused", str(err)
    assert pdu is not None and used == len(frame)
    return "decoded", (pdu.function_code, pdu.isError(), getattr(pdu, "registers", None))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([3, 4]),
    st.one_of(
        st.integers(0, 250).flatmap(
            lambda n: st.binary(min_size=n, max_size=n).map(lambda b: bytes([n]) + b)
        ),
        st.binary(min_size=1, max_size=40),  # any byte count, any length: short, odd, long
    ),
)
def test_register_replies_decode_as_pymodbus_decodes_them(fc: int, body: bytes) -> None:
    assert _decode(_decoder(), fc, body) == _decode(DecodePDU(is_server=False), fc, body)
