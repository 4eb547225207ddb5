"""The per-photo stages: decode, detect, choose, quality, checks, presentation attack, align, embed."""
