"""Procedural sound events with captions: the embedded t2a data.

Text-to-audio models (AudioLDM, Liu et al. 2023; EzAudio, Hai et al. 2024)
train on AudioCaps / Clotho: a few seconds of everyday sound and one sentence
about it.  The embedded stand-in keeps that shape (2-5 s mono clips at 16 kHz,
one caption each) but synthesises the sounds from nine event kinds with a few
attributes, so a model has something checkable to be faithful to:

* ``pitch``: low or high (centre frequency of the tone, resonance or filter);
* ``loudness``: quiet or loud (peak amplitude);
* ``count``: once, twice or three times, for discrete events;
* ``rate``: slow or fast (spacing of repeats, click rate, siren sweep speed).

A clip holds one event, or two events of different kinds either layered ("a
low hum while a bell rings twice") or in sequence ("a quiet beep, then a
falling chirp").  Everything is plain vectorised numpy; a clip's randomness
comes only from the ``Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

KINDS: tuple[str, ...] = (
    "beep", "rising chirp", "falling chirp", "noise burst", "click train",
    "knock", "siren", "bell", "hum",
)
COUNTED_KINDS = frozenset({"beep", "rising chirp", "falling chirp", "noise burst", "knock", "bell"})
RATED_KINDS = COUNTED_KINDS | {"click train", "siren"}  # hum has no rate
PITCHES = ("low", "high")
LOUDNESSES = ("quiet", "loud")
RATES = ("slow", "fast")
ARRANGEMENTS = ("single", "layered", "sequence")
ARRANGEMENT_WEIGHTS = (0.6, 0.2, 0.2)
MIN_SECONDS, MAX_SECONDS = 2.0, 5.0
PEAK = {"quiet": 0.2, "loud": 0.75}
REPEAT_GAP = {"slow": (0.55, 0.75), "fast": (0.15, 0.25)}  # silence between repeats (s)


@dataclass(frozen=True)
class EventSpec:
    """One sound event; ``count`` and ``rate`` only where the kind has them (else 1 / "")."""

    kind: str
    pitch: str = "low"
    loudness: str = "loud"
    count: int = 1
    rate: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown sound kind {self.kind!r}; expected one of {KINDS}")
        if self.pitch not in PITCHES or self.loudness not in LOUDNESSES:
            raise ValueError(f"pitch must be in {PITCHES} and loudness in {LOUDNESSES}, got {self}")
        if self.count not in (1, 2, 3) or (self.count > 1 and self.kind not in COUNTED_KINDS):
            raise ValueError(f"count {self.count} is not allowed for {self.kind!r}")
        has_rate = self.kind in RATED_KINDS and (self.kind not in COUNTED_KINDS or self.count > 1)
        if (self.rate in RATES) != has_rate or (self.rate and self.rate not in RATES):
            raise ValueError(f"rate {self.rate!r} does not fit {self.kind!r} with count {self.count}")


@dataclass(frozen=True)
class ClipSpec:
    """A clip: one or two events, how they are arranged, and its duration in seconds."""

    events: tuple[EventSpec, ...]
    arrangement: str = "single"
    seconds: float = 3.0
    onsets: tuple[float, ...] = field(default=())  # start of each event (s)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The event kinds present, in caption order."""
        return tuple(event.kind for event in self.events)

    def to_dict(self) -> dict:
        return {"events": [asdict(e) for e in self.events], "arrangement": self.arrangement,
                "seconds": self.seconds, "onsets": list(self.onsets)}

    @staticmethod
    def from_dict(data: dict) -> "ClipSpec":
        events = tuple(EventSpec(**e) for e in data["events"])
        return ClipSpec(events, data["arrangement"], float(data["seconds"]), tuple(data.get("onsets", ())))


# ------------------------------------------------------------------ drawing specs
def _pick(rng: np.random.Generator, options):
    return options[rng.integers(len(options))]


def random_event(rng: np.random.Generator, kind: str | None = None) -> EventSpec:
    """Draw an event: its kind (unless given), then each attribute uniformly."""
    kind = kind if kind is not None else _pick(rng, KINDS)
    count = int(rng.integers(1, 4)) if kind in COUNTED_KINDS else 1
    has_rate = kind in RATED_KINDS and (kind not in COUNTED_KINDS or count > 1)
    return EventSpec(kind, _pick(rng, PITCHES), _pick(rng, LOUDNESSES), count, _pick(rng, RATES) if has_rate else "")


def random_clip(rng: np.random.Generator, kind: str | None = None) -> ClipSpec:
    """Draw a clip: arrangement, its events (the first of ``kind`` if given), a duration and onsets.

    Durations are whole multiples of 0.1 s between 2 and 5 s, long enough for the events.
    """
    arrangement = ARRANGEMENTS[rng.choice(len(ARRANGEMENTS), p=ARRANGEMENT_WEIGHTS)]
    first = random_event(rng, kind)
    events = [first]
    if arrangement != "single":
        others = [k for k in KINDS if k != first.kind]
        events.append(random_event(rng, _pick(rng, others)))
        while _needed_seconds(events, arrangement) > MAX_SECONDS:  # two long events in sequence
            events[1] = random_event(rng, _pick(rng, others))
    lengths = [event_seconds(event) for event in events]
    needed = _needed_seconds(events, arrangement)
    low = float(np.ceil(max(MIN_SECONDS, needed) * 10) / 10)
    seconds = float(np.round(rng.uniform(low, MAX_SECONDS), 1))
    if arrangement == "sequence":
        slack = max(seconds - needed, 0.0)
        start = 0.05 + rng.uniform(0, slack / 2)
        gap = 0.2 + rng.uniform(0, slack / 2)
        onsets = (start, start + lengths[0] + gap)
    else:
        onsets = tuple(0.05 + rng.uniform(0, max(seconds - 0.1 - length, 0.0)) for length in lengths)
    return ClipSpec(tuple(events), arrangement, seconds, tuple(float(np.round(o, 3)) for o in onsets))


def _needed_seconds(events: list[EventSpec], arrangement: str) -> float:
    lengths = [event_seconds(event) for event in events]
    return sum(lengths) + 0.3 if arrangement == "sequence" else max(lengths) + 0.2


# ------------------------------------------------------------------ captions
_NOUNS = {
    "beep": ("beep", "beeps"), "rising chirp": ("rising chirp", "rising chirps"),
    "falling chirp": ("falling chirp", "falling chirps"), "noise burst": ("burst of noise", "bursts of noise"),
    "click train": ("click train", "click trains"), "knock": ("knock", "knocks"),
    "siren": ("siren", "sirens"), "bell": ("bell", "bells"), "hum": ("hum", "hums"),
}
_VERBS = {
    "beep": "sounds", "rising chirp": "sweeps up", "falling chirp": "sweeps down", "noise burst": "hisses",
    "knock": "knocks", "bell": "rings", "click train": "clicks", "siren": "wails", "hum": "drones",
}
_COUNT_ADVERBS = {1: "once", 2: "twice", 3: "three times"}
_COUNT_WORDS = {2: "two", 3: "three"}
_RATE_ADVERBS = {"slow": "slowly", "fast": "quickly"}
_RATE_ADJECTIVES = {"slow": "slow", "fast": "fast"}


def _article(words: str) -> str:
    return f"an {words}" if words[:1] in "aeiou" else f"a {words}"


def event_phrase(event: EventSpec, variant: int = 0) -> str:
    """Describe one event, e.g. "a loud high beep, twice, quickly" or "two fast quiet low knocks"."""
    noun, plural = _NOUNS[event.kind]
    adjectives = f"{event.loudness} {event.pitch}"
    rate = event.rate
    if event.count > 1 and variant % 3 == 1:
        return f"{_COUNT_WORDS[event.count]} {_RATE_ADJECTIVES[rate]} {adjectives} {plural}"
    if variant % 3 == 2:
        verb = _VERBS[event.kind]
        manner = "loudly" if event.loudness == "loud" else "softly"
        if rate:
            manner = f"{manner} and {_RATE_ADVERBS[rate]}"
        text = f"{_article(f'{event.pitch} {noun}')} {verb} {manner}"
        return text + (f" {_COUNT_ADVERBS[event.count]}" if event.kind in COUNTED_KINDS else "")
    if event.kind in COUNTED_KINDS:
        text = _article(f"{adjectives} {noun}") + f", {_COUNT_ADVERBS[event.count]}"
        return text + (f", {_RATE_ADVERBS[rate]}" if rate else "")
    return _article(f"{_RATE_ADJECTIVES[rate]} {adjectives} {noun}" if rate else f"{adjectives} {noun}")


def caption(clip: ClipSpec, rng: np.random.Generator | None = None) -> str:
    """Describe a clip; with ``rng`` the wording varies, without it the first form is used."""
    variant = (lambda: int(rng.integers(3))) if rng is not None else (lambda: 0)
    phrases = [event_phrase(event, variant()) for event in clip.events]
    if clip.arrangement == "single":
        return phrases[0]
    comma = "," if "," in phrases[0] else ""
    if clip.arrangement == "layered":
        joiner = f"{comma} while" if variant() < 2 else f"{comma} over"
    else:
        joiner = ", then" if variant() < 2 else f"{comma} followed by"
    return f"{phrases[0]}{joiner} {phrases[1]}"


# ------------------------------------------------------------------ synthesis
def _unit_seconds(kind: str) -> float:
    """Length of one occurrence of a counted event (s)."""
    return {"beep": 0.2, "rising chirp": 0.4, "falling chirp": 0.4, "noise burst": 0.3, "knock": 0.12,
            "bell": 0.9}[kind]


_SUSTAINED_SECONDS = {"click train": 1.2, "siren": 1.8, "hum": 1.8}


def event_seconds(event: EventSpec) -> float:
    """Total length of an event, repeats included (s); sustained kinds have a fixed length."""
    if event.kind in _SUSTAINED_SECONDS:
        return _SUSTAINED_SECONDS[event.kind]
    gap = REPEAT_GAP[event.rate][1] if event.rate else 0.0  # the longest gap, so an event always fits
    return event.count * _unit_seconds(event.kind) + (event.count - 1) * gap


def _fade(n: int, sample_rate: int, seconds: float = 0.005) -> np.ndarray:
    """A (n,) envelope with short linear fade in and out (avoids clicks at the edges)."""
    ramp = max(1, min(int(seconds * sample_rate), n // 2))
    envelope = np.ones(n, dtype=np.float64)
    envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
    envelope[n - ramp :] = np.linspace(1.0, 0.0, ramp)
    return envelope


def _sweep(freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """A sine following the instantaneous frequency ``freq`` (n,) in Hz."""
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)


def _band_noise(rng: np.random.Generator, n: int, low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """White noise band-limited to [low_hz, high_hz] by zeroing FFT bins, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-9)


def _unit(kind: str, pitch: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """One occurrence of a counted event, unnormalised (n,)."""
    n = int(_unit_seconds(kind) * sample_rate)
    t = np.arange(n) / sample_rate
    high = pitch == "high"
    if kind == "beep":
        freq = rng.uniform(1300, 1900) if high else rng.uniform(400, 600)
        return np.sin(2 * np.pi * freq * t) * _fade(n, sample_rate, 0.01)
    if kind in ("rising chirp", "falling chirp"):
        start, stop = (rng.uniform(900, 1100), rng.uniform(2800, 3400)) if high else (
            rng.uniform(180, 240), rng.uniform(650, 800))
        if kind == "falling chirp":
            start, stop = stop, start
        freq = start * (stop / start) ** (t / t[-1])  # exponential sweep
        return _sweep(freq, sample_rate) * _fade(n, sample_rate, 0.02)
    if kind == "noise burst":
        band = (3000.0, 7000.0) if high else (100.0, 800.0)
        return _band_noise(rng, n, *band, sample_rate) * np.exp(-t / 0.1) * _fade(n, sample_rate, 0.003)
    if kind == "knock":
        freq = rng.uniform(450, 650) if high else rng.uniform(110, 170)
        body = np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.025)
        transient = _band_noise(rng, n, 200.0, 4000.0, sample_rate) * np.exp(-t / 0.004) * 0.4
        return (body + transient) * _fade(n, sample_rate, 0.002)
    if kind == "bell":
        base = rng.uniform(900, 1200) if high else rng.uniform(280, 380)
        ratios = np.array([1.0, 2.76, 5.40, 8.93])  # inharmonic partials of a struck bar
        decays = np.array([0.45, 0.3, 0.18, 0.1])[:, None]
        partials = np.sin(2 * np.pi * base * ratios[:, None] * t) * np.exp(-t / decays)  # (4, n)
        partials = partials[base * ratios < 0.45 * sample_rate]
        weights = np.array([1.0, 0.6, 0.4, 0.25])[: len(partials), None]
        return (weights * partials).sum(0) * _fade(n, sample_rate, 0.002)
    raise ValueError(f"{kind!r} is not a counted event kind")


def _sustained(event: EventSpec, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A click train, siren or hum of its fixed length, unnormalised (n,)."""
    n = int(_SUSTAINED_SECONDS[event.kind] * sample_rate)
    t = np.arange(n) / sample_rate
    high = event.pitch == "high"
    if event.kind == "click train":
        clicks_per_second = rng.uniform(18, 24) if event.rate == "fast" else rng.uniform(5, 7)
        resonance = rng.uniform(3500, 4500) if high else rng.uniform(700, 1000)
        since_click = np.mod(t, 1.0 / clicks_per_second)  # (n,) time since the last click
        return np.sin(2 * np.pi * resonance * since_click) * np.exp(-since_click / 0.003) * _fade(n, sample_rate)
    if event.kind == "siren":
        centre = rng.uniform(1100, 1400) if high else rng.uniform(450, 600)
        lfo_hz = rng.uniform(3.0, 4.5) if event.rate == "fast" else rng.uniform(0.6, 1.0)
        freq = centre * (1 + 0.3 * np.sin(2 * np.pi * lfo_hz * t))
        return _sweep(freq, sample_rate) * _fade(n, sample_rate, 0.05)
    if event.kind == "hum":
        base = rng.uniform(170, 230) if high else rng.uniform(55, 80)
        harmonics = np.arange(1, 7)[:, None]  # (6, 1)
        tones = np.sin(2 * np.pi * base * harmonics * t) / harmonics  # (6, n)
        tremolo = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 4) * t)
        return tones.sum(0) * tremolo * _fade(n, sample_rate, 0.1)
    raise ValueError(f"{event.kind!r} is not a sustained event kind")


def synthesise_event(event: EventSpec, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """One event's waveform (n,), float64, peak amplitude set by its loudness."""
    if event.kind in COUNTED_KINDS:
        unit = _unit(event.kind, event.pitch, rng, sample_rate)
        gap = int(rng.uniform(*REPEAT_GAP[event.rate]) * sample_rate) if event.rate else 0
        stride = len(unit) + gap
        wave = np.zeros(stride * (event.count - 1) + len(unit))
        for index in range(event.count):  # at most three repeats
            wave[index * stride : index * stride + len(unit)] += unit
    else:
        wave = _sustained(event, rng, sample_rate)
    return wave * (PEAK[event.loudness] / (np.abs(wave).max() + 1e-9))


def synthesise(clip: ClipSpec, rng: np.random.Generator, sample_rate: int = 16000) -> np.ndarray:
    """A clip's waveform, float32 mono (round(seconds * sample_rate),) in [-1, 1]."""
    total = int(round(clip.seconds * sample_rate))
    audio = np.zeros(total)
    for event, onset in zip(clip.events, clip.onsets):
        wave = synthesise_event(event, rng, sample_rate)
        start = min(int(onset * sample_rate), total)
        wave = wave[: total - start]
        audio[start : start + len(wave)] += wave
    audio += rng.standard_normal(total) * 1e-3  # a faint noise floor, like a real recording
    peak = np.abs(audio).max()
    if peak > 0.98:
        audio *= 0.98 / peak
    return audio.astype(np.float32)
