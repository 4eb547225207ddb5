"""Stubs generated from ../protos/facesvc/v1/face_service.proto by scripts/generate_stubs.py
(`make proto`); never edited by hand. Private: the SDK's public API never returns them."""
