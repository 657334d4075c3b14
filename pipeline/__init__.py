"""Kiln: bake layered, verified, versioned machine images and record them in a catalog."""

__version__ = "0.1.0"
