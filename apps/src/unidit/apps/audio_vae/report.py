"""The audio VAE's report: latent statistics, the metric table, reconstructed wavs.

Reconstruction metrics (MR-STFT distance, SI-SDR, mel L1; see
:mod:`unidit.tokenizers.audio_vae.metrics`) are measured on

* held-out clips of the training distribution (the embedded test split, or a folder's
  validation files), and
* real recorded sounds the VAE never trained on: the wav files shipped in the
  ``pygame`` wheel's examples (found with ``importlib.util.find_spec``, pygame itself
  is never imported),

each beside two trivial codecs (silence; 4x decimate + upsample) so the numbers can be read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm
from unidit.tokenizers.audio_io import load_audio, write_wav
from unidit.tokenizers.audio_vae import AudioVAE, baseline_metrics, reconstruct, reconstruction_metrics
from unidit.tokenizers.audio_vae.model import pad_to_hop
from unidit.tokenizers.audio_vae.tiling import tiled_encode
from unidit.training.export import write_folder_atomically

METRIC_NAMES = ("mr_stft", "si_sdr", "mel_l1")
METRIC_HEADERS = {"mr_stft": "MR-STFT (lower)", "si_sdr": "SI-SDR dB (higher)", "mel_l1": "mel L1 (lower)"}


class AudioVAEReport:
    """What ``unidit fit audio-vae`` measures and writes after training.

    Args:
        stats_clips: training clips whose latents set the normalisation statistics.
        max_eval_clips: held-out clips evaluated (None = all).
        num_written: clips whose reconstructions are written as wav (original + reconstruction).
        tile_latents: latent frames per tile for long clips.
        overlap_latents: context frames on each side of a tile.
    """

    def __init__(
        self,
        stats_clips: int = 200,
        max_eval_clips: int | None = None,
        num_written: int = 4,
        tile_latents: int = 256,
        overlap_latents: int = 16,
    ):
        self.stats_clips, self.max_eval_clips, self.num_written = stats_clips, max_eval_clips, num_written
        self.tile_latents, self.overlap_latents = tile_latents, overlap_latents


def pygame_wavs_folder() -> Path | None:
    """``<pygame>/examples/data`` located without importing pygame (None when pygame is absent)."""
    spec = importlib.util.find_spec("pygame")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "examples" / "data"
    return folder if any(folder.glob("*.wav")) else None


def pygame_clips(sample_rate: int) -> tuple[list[np.ndarray], list[str]]:
    """The real recorded wavs shipped with pygame, resampled (empty lists without pygame)."""
    folder = pygame_wavs_folder()
    if folder is None:
        return [], []
    files = sorted(folder.glob("*.wav"))
    return [load_audio(f, sample_rate) for f in files], [f.stem for f in files]


@torch.no_grad()
def fit_latent_statistics(vae: AudioVAE, clips: list[np.ndarray], report: AudioVAEReport) -> dict[str, float]:
    """Set ``vae``'s latent mean / std from the posterior means of (up to ``stats_clips``) clips."""
    vae.eval()
    latents = []
    for clip in tqdm(clips[: report.stats_clips], desc="latent statistics", leave=False):
        wav = torch.from_numpy(np.asarray(clip, dtype=np.float32)).to(vae.latent_mean.device)  # (T,)
        wav = pad_to_hop(wav, vae.hop_length)[None, None]  # (1, 1, T_pad)
        latents.append(tiled_encode(vae, wav, report.tile_latents, report.overlap_latents))  # (1, C, T')
    vae.fit_latent_stats(torch.cat(latents, dim=-1))  # (1, C, sum T')
    return {"mean_abs_mean": float(vae.latent_mean.abs().mean()), "mean_std": float(vae.latent_std.mean())}


def evaluate_sets(vae: AudioVAE, sets: dict[str, list[np.ndarray]], report: AudioVAEReport) -> dict:
    """Metrics of the VAE and of the trivial baselines on each named set of clips."""
    vae.eval()
    results = {}
    for name, clips in sets.items():
        if not clips:
            continue
        clips = clips[: report.max_eval_clips] if report.max_eval_clips else clips
        rows = {"vae": reconstruction_metrics(vae, clips, report.tile_latents, report.overlap_latents)}
        rows.update(baseline_metrics(clips, vae.sample_rate))
        seconds = sum(len(c) for c in clips) / vae.sample_rate
        results[name] = {"num_clips": len(clips), "seconds": round(seconds, 1), "rows": rows}
    return results


def format_table(results: dict) -> str:
    """A plain-text table: one line per (set, reconstruction)."""
    header = f"{'clips':<26}{'reconstruction':<16}" + "".join(f"{METRIC_HEADERS[m]:>20}" for m in METRIC_NAMES)
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        label = f"{name} ({result['num_clips']})"
        for row, values in result["rows"].items():
            lines.append(f"{label:<26}{row:<16}" + "".join(f"{values[m]:>20.3f}" for m in METRIC_NAMES))
            label = ""
    return "\n".join(lines)


def write_examples(vae: AudioVAE, clips: dict[str, np.ndarray], out: Path, report: AudioVAEReport) -> list[Path]:
    """``<name>_original.wav`` and ``<name>_vae.wav`` for each named clip."""
    written = []
    for name, clip in clips.items():
        written.append(write_wav(out / f"{name}_original.wav", clip, vae.sample_rate))
        recon = reconstruct(vae, clip, report.tile_latents, report.overlap_latents)
        written.append(write_wav(out / f"{name}_vae.wav", np.clip(recon, -1.0, 1.0), vae.sample_rate))
    return written


def write_metrics(out: Path, payload: dict) -> Path:
    """``metrics.json``, written atomically."""
    out.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=out, prefix=".metrics.", suffix=".json")
    with os.fdopen(handle, "w") as file:
        json.dump(payload, file, indent=2)
    os.replace(tmp, out / "metrics.json")
    return out / "metrics.json"


def save_vae(vae: AudioVAE, directory: Path) -> Path:
    """``save_pretrained`` into a staging folder swapped into place (never a half-written export)."""
    return write_folder_atomically(directory, vae.save_pretrained)
