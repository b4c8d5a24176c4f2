"""Live events: the durable log, the stream processor and the online feature store."""
