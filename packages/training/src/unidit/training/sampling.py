"""How samples are drawn: one options type for every report and every ``unidit sample``.

A rectified-flow task integrates its ODE with a sampler (Euler, Heun or
midpoint), classifier-free guidance (Ho & Salimans 2022) with the rescale of
Lin et al. 2024 (used by EzAudio, Hai et al. 2024, §3.4), an optional time
shift (SD3, Esser et al. 2024, §5.3.2) and optional step caching (FORA,
Selvaraju et al. 2024). :class:`SamplingOptions` holds those choices;
:class:`ReportOptions` adds what a metric report needs on top (how many
samples at a time, how many to write as media). A task's report subclasses
``ReportOptions`` with its own fields and defaults, and ``unidit sample
<task>`` offers the same options with the report's defaults, so a sample
drawn by hand uses the settings the report measured.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Callable, Literal, TypeVar

from tqdm.auto import tqdm
from unidit.backbones.time_schedule import SWAY_RANGE

SAMPLER_NAMES = ("euler", "heun", "midpoint")
T = TypeVar("T")


@dataclass
class SamplingOptions:
    """How a task draws samples.

    Attributes:
        steps: ODE steps of the sampler (Heun and midpoint call the network twice a step).
        sampler: euler, heun or midpoint.
        cfg_scale: classifier-free guidance scale w (1 = no guidance).
        cfg_rescale: guidance rescale phi (0 = plain CFG, 1 = fully rescaled).
        shift: sampling time shift (above 1 spends more steps near noise); None = the training shift.
        cache_interval: step caching: recompute the backbone's blocks on one network call in this many (1 = exact).
        cache_warmup: network calls always computed in full before step caching starts.
        seed: noise seed; the k-th batch of a batched run uses seed + k.
        sway: F5-TTS sway sampling coefficient s of the step times (-1 packs steps near noise); none = uniform steps.
    """

    steps: int = 30
    sampler: Literal["euler", "heun", "midpoint"] = "euler"
    cfg_scale: float = 1.0
    cfg_rescale: float = 0.0
    shift: float | None = None
    cache_interval: int = 1
    cache_warmup: int = 2
    seed: int = 0
    sway: float | None = None

    def __post_init__(self) -> None:
        at_least("steps", self.steps, 1)
        if self.sampler not in SAMPLER_NAMES:
            raise ValueError(f"sampler: expected one of {', '.join(SAMPLER_NAMES)}, got {self.sampler!r}")
        at_least("cfg_scale", self.cfg_scale, 0.0)
        if not 0.0 <= float(self.cfg_rescale) <= 1.0:
            raise ValueError(f"cfg_rescale: expected a number in [0, 1], got {self.cfg_rescale}")
        if self.shift is not None and not float(self.shift) > 0.0:
            raise ValueError(f"shift: expected a positive number (or none for the training shift), got {self.shift}")
        at_least("cache_interval", self.cache_interval, 1)
        at_least("cache_warmup", self.cache_warmup, 0)
        if self.sway is not None and not SWAY_RANGE[0] <= float(self.sway) < SWAY_RANGE[1]:
            raise ValueError(f"sway: expected a number in [{SWAY_RANGE[0]:g}, {SWAY_RANGE[1]:.3f}) "
                             f"(or none for uniform steps), got {self.sway}")

    def sampling(self) -> SamplingOptions:
        """Just the sampling fields (a report's extra fields dropped)."""
        return SamplingOptions(**{f.name: getattr(self, f.name) for f in fields(SamplingOptions)})

    def with_seed(self, seed: int):
        """A copy with another noise seed."""
        return dataclasses.replace(self, seed=seed)


@dataclass
class ReportOptions(SamplingOptions):
    """Sampling options plus what a metric report needs.

    Attributes:
        batch_size: samples generated per batch.
        num_written: samples written as media files after the metrics.
    """

    batch_size: int = 32
    num_written: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least("batch_size", self.batch_size, 1)
        at_least("num_written", self.num_written, 0)


def at_least(name: str, value, low) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        kind = "an integer" if isinstance(low, int) else "a number"
        raise ValueError(f"{name}: expected {kind} >= {low}, got {value!r}")


def generate_in_batches(
    sample: Callable[[slice, SamplingOptions], T], count: int, options: SamplingOptions, batch_size: int,
    desc: str = "sampling",
) -> list[T]:
    """``sample(part, options)`` for consecutive slices of ``range(count)``, ``batch_size`` at a time.

    The k-th batch gets ``options`` with seed ``options.seed + k``, so a run's
    samples do not depend on anything but the options and the batch size. A
    progress bar counts batches. Returns one result per batch, in order.
    """
    starts = range(0, count, batch_size)
    return [
        sample(slice(start, start + batch_size), options.with_seed(options.seed + number))
        for number, start in enumerate(tqdm(starts, desc=desc, unit="batch"))
    ]
