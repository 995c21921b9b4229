"""The HIL session (emulated devices, plant truth, scoring) and the demo built on it."""
