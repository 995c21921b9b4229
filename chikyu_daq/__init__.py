"""chikyu_daq."""
