"""The liveness session: prompts and their state machine, face state per frame, the signed token."""
