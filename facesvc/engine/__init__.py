"""The recognition engine. No gRPC here: the transport lives in facesvc.rpc."""

from facesvc.engine.engine import FaceEngine
from facesvc.engine.matching.gallery import Candidate, Gallery
from facesvc.engine.types import FaceSelection, StoredEmbedding

__all__ = ["Candidate", "FaceEngine", "FaceSelection", "Gallery", "StoredEmbedding"]
