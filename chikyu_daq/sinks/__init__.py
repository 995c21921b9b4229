"""Where results and raw samples go: the fan-out, MQTT, lab assays, InfluxDB."""
