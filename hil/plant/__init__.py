"""Plant model of the HIL rig: hydraulics with ground truth, sensors, faults, clock, synth."""
