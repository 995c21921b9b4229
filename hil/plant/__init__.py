"""Plant model of the HIL rig: hydraulics with ground truth, sensors, faults, clock, synth.

Entry points: :class:`Plant` (live, stepped by simulation time), :func:`synth_blocks`
(a long recording as columnar blocks with its truth), :class:`SimClock`/:class:`RealClock`.
"""

from hil.devices import CHANNELS, DEVICES, ENDPOINTS
from hil.faults import LINK_FAULTS, ActiveFault, FaultKind, fault_flags
from hil.plant.clock import Clock, RealClock, SimClock
from hil.plant.plant import Plant
from hil.plant.synth import TRUTH_SERIES, SynthBlock, synth_blocks
from hil.plant.truth import TruthTotals

__all__ = [
    "CHANNELS",
    "DEVICES",
    "ENDPOINTS",
    "LINK_FAULTS",
    "TRUTH_SERIES",
    "ActiveFault",
    "Clock",
    "FaultKind",
    "Plant",
    "RealClock",
    "SimClock",
    "SynthBlock",
    "TruthTotals",
    "fault_flags",
    "synth_blocks",
]
