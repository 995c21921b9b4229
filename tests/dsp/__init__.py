"""Tests of the dsp package."""
