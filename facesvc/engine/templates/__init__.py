"""Sealed templates: the blob format and key ring (sealing), and what the RPCs accept (policy)."""

from facesvc.engine.templates.policy import KeyRingFile, TemplateMode, Templates
from facesvc.engine.templates.sealing import Exported, KeyRing, Opened, SealedTemplate, Template

__all__ = [
    "Exported",
    "KeyRing",
    "KeyRingFile",
    "Opened",
    "SealedTemplate",
    "Template",
    "TemplateMode",
    "Templates",
]
