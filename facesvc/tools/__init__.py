"""Command-line tools that run beside the service (accuracy evaluation)."""
