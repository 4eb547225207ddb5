"""Comparing embeddings: distances, ranking and the gallery they rank."""
