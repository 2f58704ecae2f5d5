"""``Renewable``: a dataset that a run can declare out of date before it starts."""

from __future__ import annotations


class Renewable:
    """Mixin of a Kedro dataset: after ``mark_stale()`` it does not "exist".

    ``kedro run --only-missing-outputs`` runs a node when one of its outputs does
    not exist; an output built from an input that this run recomputes is out of
    date even though its file is there (see :mod:`action100m.runtime.freshness`).
    """

    _stale = False

    def mark_stale(self) -> None:
        """Report the output as missing for the rest of this run's planning."""
        self._stale = True

    def exists(self) -> bool:
        return not self._stale and super().exists()  # type: ignore[misc]
