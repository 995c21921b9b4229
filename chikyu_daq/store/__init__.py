"""The run store: the writer (black box), the reader, durable-file helpers."""
