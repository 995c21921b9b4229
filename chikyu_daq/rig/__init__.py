"""The HIL rig in the application: a session (emulated devices, plant truth, scoring), the demo
built on it, and the synth writer (a simulated plant run written as a recorded run)."""
