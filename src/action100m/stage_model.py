"""The base of every model behind a stage: ``setup()`` once, then ``__call__``."""

from __future__ import annotations


class StageModel:
    """Separates loading weights (``setup``, once per worker) from calls."""

    def __init__(self) -> None:
        self._ready = False

    def ensure_setup(self) -> None:
        """Call :meth:`setup` once."""
        if not self._ready:
            self.setup()
            self._ready = True

    def setup(self) -> None:
        """Load weights or open clients; called once before the first call."""
