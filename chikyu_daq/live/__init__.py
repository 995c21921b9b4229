"""The running daemon: pipeline, processor, systemd notify, logging."""
