"""The interfaces other systems speak: Prometheus, OPC UA, operator alarm commands, clock health.

`Interfaces` is the one object the pipeline holds for all of them (see `facade`).
"""
