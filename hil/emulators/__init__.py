"""Device emulators: every ICD device over its real transport, for tests, HIL and demos."""

from hil.emulators.densitometer import DensitometerEmulator
from hil.emulators.modbus import ModbusGatewayEmulator, RtuBusEmulator
from hil.emulators.rig import Rig
from hil.emulators.source import NOMINAL, ConstantSource, ScriptedSource, ValueSource
from hil.emulators.unit import GLOBAL_FC_LOG, PROFILES, WRITE_FUNCTIONS, EmulatedUnit, UnitProfile
from hil.faults import WIRE_FAULTS, FaultSet

__all__ = [
    "GLOBAL_FC_LOG",
    "NOMINAL",
    "PROFILES",
    "WIRE_FAULTS",
    "WRITE_FUNCTIONS",
    "ConstantSource",
    "DensitometerEmulator",
    "EmulatedUnit",
    "FaultSet",
    "ModbusGatewayEmulator",
    "Rig",
    "RtuBusEmulator",
    "ScriptedSource",
    "UnitProfile",
    "ValueSource",
]
