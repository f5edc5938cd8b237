"""prada: distil chain-of-thought from a large teacher into a small student that generalises across domains."""

__version__ = "0.1.0"
