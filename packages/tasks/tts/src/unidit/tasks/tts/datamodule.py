"""Lightning data module for tts: utterances encoded once by the frozen audio VAE, then latents.

SimpleSpeech 2 (Yang et al. 2024, §3) trains its DiT on pre-computed codec
latents; here every utterance is resampled to the audio VAE's rate (16 kHz:
speech intelligibility lives below 8 kHz, and both evaluators — pocketsphinx
and resemblyzer — work at 16 kHz), encoded once (posterior means, batches of
equal length, :mod:`unidit.training.latent_codec`), and the latents are cached
under ``$UNIDIT_CACHE`` keyed by the VAE's weights and the utterances.  A
training batch holds latents ``(C, T_i)`` of their true lengths, the lines
(transcript + voice) and the durations in seconds; the task packs and pads.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from unidit.tasks.tts.corpus import SPLITS, EmbeddedCorpus, Utterance, embedded_corpus, read_libritts, read_ljspeech, split
from unidit.tasks.tts.frontend import Line
from unidit.tasks.tts.resampled import at_rate
from unidit.tokenizers.audio_io import load_audio
from unidit.tokenizers.audio_vae import AudioVAE
from unidit.training.export import write_file_atomically
from unidit.training.latent_codec import encode_clips
from unidit.training.latent_data import FrozenVAEData, cached_latents, latents_path
from unidit.training.model_cache import cache_root


class UtteranceLatents(Dataset):
    """Items ``{"latent": (C, T) float32, "line": Line, "seconds": float}``."""

    def __init__(self, latents: list[Tensor], utterances: list[Utterance]) -> None:
        if len(latents) != len(utterances):
            raise ValueError(f"{len(latents)} latents but {len(utterances)} utterances")
        self.latents, self.utterances = latents, utterances

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, index: int) -> dict:
        u = self.utterances[index]
        return {"latent": self.latents[index], "line": Line(u.text, u.speaker), "seconds": u.seconds}


def collate_utterances(items: list[dict]) -> dict:
    """``{"latents": [(C, T_i)], "lines": [Line], "seconds": (B,) float32}`` (latents keep their lengths)."""
    return {"latents": [item["latent"] for item in items], "lines": [item["line"] for item in items],
            "seconds": torch.tensor([item["seconds"] for item in items], dtype=torch.float32)}


class TTSData(FrozenVAEData, pl.LightningDataModule):
    """Transcribed utterances as VAE latents.

    Args:
        source: ``embedded`` (the espeak-ng corpus, synthesised from ``seed`` and cached),
            ``ljspeech`` (``metadata.csv`` + ``wavs/``) or ``libritts`` (``<speaker>/<chapter>/<id>.wav``).
        root: the corpus folder for ``ljspeech`` / ``libritts``.
        sentences: embedded corpus: texts spoken by one voice each.
        shared_sentences: embedded corpus: texts spoken by every voice (the test split).
        voices: embedded corpus: voice names (empty = all of :data:`unidit.tasks.tts.espeak.VOICES`).
        seed: corpus generation and shuffling seed.
        sample_rate: Hz the utterances are resampled to once (cached): the audio VAE's rate.
        vae_dir: audio VAE folder that encodes the clips; None = the model's (``model.vae``).
        max_seconds: longer utterances are left out of training.
        batch_size: utterances per batch.
        bucket_by_length: training batches hold utterances of similar length.
        encode_batch_size: clips per VAE encoder call.
        num_workers: DataLoader workers.
        cache_dir: cache of the embedded corpus and the latents (default ``$UNIDIT_CACHE`` or ``~/.cache/unidit``).
        skip_bad_samples: real data: skip (count and print) unreadable files and bad rows.
    """

    vae_class = AudioVAE
    vae_missing = "tts needs an audio VAE: set model.vae (or data.vae_dir) to a `unidit fit audio-vae` export folder"

    def __init__(
        self,
        source: Literal["embedded", "ljspeech", "libritts"] = "embedded",
        root: str | None = None,
        sentences: int = 2100,
        shared_sentences: int = 20,
        voices: list[str] | None = None,
        seed: int = 0,
        sample_rate: int = 16000,
        vae_dir: str | None = None,
        max_seconds: float = 10.0,
        batch_size: int = 32,
        bucket_by_length: bool = True,
        encode_batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        skip_bad_samples: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        self._splits: dict[str, list[Utterance]] = {}
        self.latents: dict[str, list[Tensor]] = {}
        self._vae = None

    # -- utterances --------------------------------------------------------------------
    def corpus_folder(self) -> Path:
        """The corpus on disk (the embedded one is synthesised on first use)."""
        h = self.hparams
        if h.source == "embedded":
            voices = tuple(h.voices or ())
            key = EmbeddedCorpus(h.seed, h.sentences, h.shared_sentences, voices).key()
            root = None if h.cache_dir is None else Path(h.cache_dir) / "tts" / f"embedded-{key}"
            return embedded_corpus(root, seed=h.seed, sentences=h.sentences, shared_sentences=h.shared_sentences,
                                   voices=voices)
        if h.source not in ("ljspeech", "libritts"):
            raise ValueError(f"data.source must be one of embedded, ljspeech, libritts; got {h.source!r}")
        if h.root is None:
            raise ValueError(f"data.root is required for source {h.source!r}")
        return Path(h.root)

    def splits(self) -> dict[str, list[Utterance]]:
        """Every split's utterances at ``sample_rate`` (training ones cut to ``max_seconds``)."""
        if not self._splits:
            h = self.hparams
            reader = read_libritts if h.source == "libritts" else read_ljspeech
            utterances = reader(self.corpus_folder(), skip_bad_samples=h.skip_bad_samples)
            utterances = at_rate(utterances, h.sample_rate, h.cache_dir)
            self._splits = {name: split(utterances, name) for name in SPLITS}
            self._splits["train"] = [u for u in self._splits["train"] if u.seconds <= h.max_seconds]
            if not self._splits["train"]:
                raise ValueError(f"{self.corpus_folder()}: no training utterance of at most {h.max_seconds} s")
        return self._splits

    def speakers(self) -> list[str]:
        """The training voices, sorted."""
        return sorted({u.speaker for u in self.splits()["train"]})

    def train_lines(self) -> tuple[list[Line], list[float]]:
        """Lines and durations (s) of the training utterances."""
        train = self.splits()["train"]
        return [Line(u.text, u.speaker) for u in train], [u.seconds for u in train]

    def waveforms(self, utterances: list[Utterance]) -> list[np.ndarray]:
        """float32 mono clips at ``sample_rate`` (the files already are: :func:`splits` resampled them)."""
        return [load_audio(u.wav, self.hparams.sample_rate) for u in utterances]

    # -- latents ---------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and not self.latents:
            if self.vae().sample_rate != self.hparams.sample_rate:
                raise ValueError(f"data.sample_rate {self.hparams.sample_rate} differs from the audio VAE's "
                                 f"{self.vae().sample_rate} Hz")
            self.latents = {name: self._cached_latents(self.splits()[name]) for name in ("train", "val")}

    def _cached_latents(self, utterances: list[Utterance]) -> list[Tensor]:
        vae = self.vae()
        path = latents_path(cache_root(self.hparams.cache_dir) / "tts", vae,
                            (f"{u.wav.resolve()}|{u.wav.stat().st_size}|{u.seconds}\n".encode() for u in utterances))
        return cached_latents(path, len(utterances), lambda: encode_clips(
            vae, self.waveforms(utterances), self.hparams.encode_batch_size, progress=True), _write_latents)

    # -- loaders ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        dataset = UtteranceLatents(self.latents["train"], self.splits()["train"])
        return self.latent_train_loader(dataset, collate_utterances)

    def val_dataloader(self) -> DataLoader:
        dataset = UtteranceLatents(self.latents["val"], self.splits()["val"])
        return self.latent_val_loader(dataset, collate_utterances)


def _write_latents(path: Path, latents: list[Tensor]) -> None:
    """Save latents (C, T_i) as one (C, ΣT) array + lengths, atomically and readable by all; failures raise."""
    buffer = io.BytesIO()
    np.savez(buffer, latents=torch.cat(latents, dim=1).numpy(),
             lengths=np.array([z.shape[1] for z in latents], dtype=np.int64))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file_atomically(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))
