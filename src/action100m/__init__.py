"""Action100M: Tree-of-Captions video annotation on Kedro."""

__version__ = "0.1.0"
