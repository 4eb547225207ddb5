"""The gRPC transport: converts messages, delegates to the engine, maps errors to statuses."""
