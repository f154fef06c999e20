"""camhub: a self-hosted home camera hub that only its owner can watch."""

__version__ = "0.1.0"
