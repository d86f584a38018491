"""espeak-ng speech synthesis in memory, through ctypes.

The shared library and its voice data ship in the ``espeakng-loader`` wheel
(``espeakng_loader.get_library_path()`` / ``get_data_path()``), so nothing is
installed system-wide. The calls follow espeak-ng's public C API,
``speak_lib.h`` (espeak-ng 1.52):

* ``int espeak_Initialize(espeak_AUDIO_OUTPUT output, int buflength, const char *path, int options)``
  with ``AUDIO_OUTPUT_SYNCHRONOUS``: ``espeak_Synth`` returns only when the
  whole text is synthesised, handing the samples to the synth callback
  ``int callback(short *wav, int numsamples, espeak_EVENT *events)``;
  it returns the output sample rate (22,050 Hz for every espeak-ng voice);
* ``espeak_SetVoiceByName(const char *name)`` with names such as ``en-us`` or
  ``en-gb-x-rp+f3`` (language voice + variant from ``voices/!v``);
* ``espeak_SetParameter(espeak_PARAMETER parameter, int value, int relative)``
  for ``espeakRATE`` (words per minute, 80-450) and ``espeakPITCH`` /
  ``espeakRANGE`` (0-100, 50 normal);
* ``espeak_Synth(const void *text, size_t size, unsigned position, espeak_POSITION_TYPE,
  unsigned end_position, unsigned flags, unsigned *unique_identifier, void *user_data)``.

The engine is one global state per process, so :class:`Espeak` is a process
singleton guarded by a lock; synthesis is deterministic (same text, voice,
rate and pitch give the same samples in a fresh process). Two kinds of state
are handled: the noise generator (libc ``rand()``, seeded before every clip),
and the pitch-flutter phase in the wave generator's static variables, which
``espeak_Initialize`` does not reset, so a clip's length can move by a few
samples with what the process synthesised before (the embedded corpus is
therefore synthesised from a fresh engine: :func:`engine_started`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 22050  # espeak-ng's output rate; checked against espeak_Initialize's return value

# speak_lib.h enums
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_ENDPAUSE = 0x1000
_EE_OK = 0
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 2, 3, 4

_NOISE_SEED = 22050

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """A named speaker: an espeak-ng voice (``language+variant``) at a speaking rate and pitch."""

    name: str  # the speaker id written to the corpus
    espeak: str  # espeak_SetVoiceByName argument, e.g. "en-us+f3"
    rate: int = 165  # words per minute
    pitch: int = 50  # 0..100, 50 is the voice's own base pitch
    pitch_range: int = 50  # 0..100 intonation range


# Five en-us voices. The Klatt-formant variants are read far better by the
# PocketSphinx en-us recogniser than the default formant voices (word error
# rate 0.07-0.12 against 0.25-0.88 for en-us+m3/m7, en-gb-x-rp and
# en-gb-scotland on the same sentences), and these five are the ones whose
# Resemblyzer embeddings stay apart: cosine 0.47-0.85 between voices on the
# same sentence against 0.83-0.92 within a voice (docs/tasks/tts.md).
VOICES: tuple[Voice, ...] = (
    Voice("us_klatt1", "en-us+klatt", rate=160, pitch=35),
    Voice("us_klatt3", "en-us+klatt3", rate=165, pitch=50),
    Voice("us_klatt4", "en-us+klatt4", rate=170, pitch=70),
    Voice("us_klatt6", "en-us+klatt6", rate=165, pitch=50),
    Voice("us_f5", "en-us+f5", rate=175, pitch=70, pitch_range=70),
)


class Espeak:
    """The espeak-ng engine of this process; use :func:`engine` rather than constructing it."""

    def __init__(self) -> None:
        import espeakng_loader

        self._library = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        lib = self._library
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self._libc.srand.argtypes = [ctypes.c_uint]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate != SAMPLE_RATE:
            raise RuntimeError(f"espeak_Initialize returned {rate}; expected a sample rate of {SAMPLE_RATE} Hz "
                               f"(library {espeakng_loader.get_library_path()}, data {data.decode()})")
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it later
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = continue synthesis

    def synthesize(self, text: str, voice: Voice) -> np.ndarray:
        """``text`` spoken by ``voice`` as int16 mono samples at :data:`SAMPLE_RATE` Hz."""
        if not text.strip():
            raise ValueError("espeak: empty text; expected at least one word")
        lib = self._library
        with self._lock:
            if lib.espeak_SetVoiceByName(voice.espeak.encode()) != _EE_OK:
                raise ValueError(f"espeak: unknown voice {voice.espeak!r} (see espeak-ng-data/voices and lang)")
            for parameter, value in ((_ESPEAK_RATE, voice.rate), (_ESPEAK_PITCH, voice.pitch),
                                     (_ESPEAK_RANGE, voice.pitch_range), (_ESPEAK_VOLUME, 100)):
                if lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                    raise ValueError(f"espeak: could not set parameter {parameter} to {value} for {voice.name}")
            encoded = text.encode("utf-8") + b"\0"
            self._chunks = []
            # aspiration and breath noise come from libc rand() (and espeak's own generator): seed both per clip
            self._libc.srand(_NOISE_SEED)
            lib.espeak_ng_SetRandSeed(_NOISE_SEED)
            status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0,
                                      _ESPEAK_CHARS_UTF8 | _ESPEAK_ENDPAUSE, None, None)
            lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK or not chunks:
            raise RuntimeError(f"espeak: synthesis of {text!r} with {voice.espeak} failed (status {status})")
        return np.concatenate(chunks).astype(np.int16, copy=False)


_ENGINE: Espeak | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> Espeak:
    """The process's espeak-ng engine, initialised on first use."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = Espeak()
        return _ENGINE


def engine_started() -> bool:
    """Whether this process has initialised espeak-ng (its synthesis state is then no longer fresh)."""
    return _ENGINE is not None


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """``text`` spoken by ``voice``: int16 mono samples at 22,050 Hz (:data:`SAMPLE_RATE`)."""
    return engine().synthesize(text, voice)


def voice_named(name: str) -> Voice:
    """The voice of :data:`VOICES` whose speaker name is ``name``."""
    for voice in VOICES:
        if voice.name == name:
            return voice
    raise ValueError(f"no voice named {name!r}; expected one of {[v.name for v in VOICES]}")
