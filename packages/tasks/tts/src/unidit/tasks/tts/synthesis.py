"""Writing espeak-ng clips to wav files, reproducibly.

This module imports only soundfile, tqdm and :mod:`unidit.tasks.tts.espeak`,
so the fresh process it may spawn starts in a second or two.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile
from tqdm.auto import tqdm
from unidit.tasks.tts.espeak import SAMPLE_RATE, engine_started, synthesize, voice_named


def write_wavs(rows: list[tuple[str, str, str]], wavs: Path, progress: bool) -> None:
    """Write ``<wavs>/<id>.wav`` for every ``(id, text, speaker)`` row, in row order, from a fresh espeak-ng engine.

    espeak-ng keeps some synthesis state (e.g. its pitch-flutter phase) in static
    variables that ``espeak_Initialize`` does not reset, so a clip depends by a few
    samples on what the process synthesised before. The corpus is therefore
    synthesised in this process only while its engine is unused, and otherwise in a
    freshly spawned one, so the same parameters always give bit-identical files.
    """
    if engine_started():
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            pool.submit(synthesise_rows, rows, wavs, progress).result()
    else:
        synthesise_rows(rows, wavs, progress)


def synthesise_rows(rows: list[tuple[str, str, str]], wavs: Path, progress: bool) -> None:
    """Write the rows' wavs with this process's engine (16-bit PCM at 22,050 Hz)."""
    wavs.mkdir(parents=True, exist_ok=True)
    for uid, text, speaker in tqdm(rows, desc="synthesising the embedded tts corpus (espeak-ng)",
                                   disable=not progress, leave=False):
        pcm = synthesize(text, voice_named(speaker))
        soundfile.write(str(wavs / f"{uid}.wav"), pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")
