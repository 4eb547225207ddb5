"""The recognition engine. No gRPC here: the transport lives in facesvc.rpc."""

from facesvc.engine.engine import Candidate, FaceEngine, Gallery
from facesvc.engine.types import FaceSelection, StoredEmbedding

__all__ = ["Candidate", "FaceEngine", "FaceSelection", "Gallery", "StoredEmbedding"]
