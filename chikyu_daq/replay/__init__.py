"""Replay a recorded run through the live processor, and its one-page report."""
