"""Ground truth of a run: what went into the collector and what reached the deck."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hil.plant.hydraulics import OUT

__all__ = ["TruthTotals"]


@dataclass(frozen=True)
class TruthTotals:
    """Exact integrals since the run started (kg; REY = rare earths plus yttrium).

    ``*_initial_kg`` is what the riser held at t = 0 (a steady start holds slurry), so the
    balance is ``delivered = taken_in + initial - in_riser``.
    """

    t_s: float
    solids_in_kg: float
    rey_in_kg: float
    solids_delivered_kg: float
    rey_delivered_kg: float
    solids_riser_kg: float
    rey_riser_kg: float
    solids_initial_kg: float
    rey_initial_kg: float

    @classmethod
    def from_row(
        cls, row: np.ndarray, solids_initial_kg: float, rey_initial_kg: float
    ) -> TruthTotals:
        return cls(
            t_s=float(row[OUT.t_s]),
            solids_in_kg=float(row[OUT.solids_in_kg]),
            rey_in_kg=float(row[OUT.rey_in_kg]),
            solids_delivered_kg=float(row[OUT.solids_out_kg]),
            rey_delivered_kg=float(row[OUT.rey_out_kg]),
            solids_riser_kg=float(row[OUT.solids_riser_kg]),
            rey_riser_kg=float(row[OUT.rey_riser_kg]),
            solids_initial_kg=solids_initial_kg,
            rey_initial_kg=rey_initial_kg,
        )

    @property
    def solids_balance_error_kg(self) -> float:
        """delivered - (taken in + initial - in riser): zero to rounding."""
        return self.solids_delivered_kg - (
            self.solids_in_kg + self.solids_initial_kg - self.solids_riser_kg
        )

    @property
    def rey_balance_error_kg(self) -> float:
        return self.rey_delivered_kg - (self.rey_in_kg + self.rey_initial_kg - self.rey_riser_kg)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
