"""Skip training steps whose loss is NaN/Inf; stop after too many in a row."""

from __future__ import annotations

import math


class NonFiniteLossError(RuntimeError):
    """Raised when ``max_nonfinite_steps`` consecutive steps had a NaN/Inf loss."""


class NonFiniteGuard:
    """Counts consecutive non-finite losses.

    Args:
        max_consecutive: how many non-finite steps in a row end the run
            (0 = never stop, only skip).
    """

    def __init__(self, max_consecutive: int = 10) -> None:
        if max_consecutive < 0:
            raise ValueError(f"max_nonfinite_steps must be >= 0, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.streak = 0
        self.skipped_total = 0

    def check(self, loss: float, step: int) -> bool:
        """Record ``loss`` of ``step``; True if it is finite (train on it), False to skip.

        Raises:
            NonFiniteLossError: the streak of non-finite losses reached ``max_consecutive``.
        """
        if math.isfinite(loss):
            self.streak = 0
            return True
        self.streak += 1
        self.skipped_total += 1
        if self.max_consecutive and self.streak >= self.max_consecutive:
            raise NonFiniteLossError(
                f"training diverged: the loss was {loss} (non-finite) for {self.streak} consecutive steps "
                f"(up to step {step}; max_nonfinite_steps={self.max_consecutive}). Those steps were skipped, "
                "so the weights are those of the last finite step; the checkpoint 'nonfinite-stop.ckpt' "
                "(and any earlier one) holds them. Lower the learning rate or check the data."
            )
        return False

    def state_dict(self) -> dict[str, int]:
        return {"streak": self.streak, "skipped_total": self.skipped_total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.streak, self.skipped_total = int(state["streak"]), int(state["skipped_total"])
