"""gt-secure: privacy-audited secure collaboration with a Gradient-Transformer provider."""

__version__ = "0.1.0"
