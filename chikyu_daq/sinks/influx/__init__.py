"""InfluxDB: line protocol, the disk spool, and the uploader that drains it."""
