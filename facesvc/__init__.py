"""facesvc: a stateless face enrollment, verification and identification service."""

__version__ = "1.0.0"
