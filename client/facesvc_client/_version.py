"""The SDK's version, kept apart so every module can import it without a cycle."""

__version__ = "1.0.0"
