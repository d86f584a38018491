"""Many clips through a frozen audio VAE, in batches of equal length (shared by t2a and tts).

A convolutional VAE sees zero padding at the end of a shorter clip, so a clip
encoded inside a padded batch would not get the latents it gets alone.
Grouping clips of one length keeps batching exact: the embedded clips have
whole tenths of a second (31 distinct lengths), real clips are mostly cropped
to the maximum duration.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def groups_by_length(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal length, each group cut into batches of at most ``batch_size``."""
    groups: dict[int, list[int]] = defaultdict(list)
    for index, length in enumerate(lengths):
        groups[length].append(index)
    return [members[i : i + batch_size] for _, members in sorted(groups.items())
            for i in range(0, len(members), batch_size)]


def pad_to_multiple(audio: np.ndarray, multiple: int) -> np.ndarray:
    """Right-pad a (T,) clip with zeros to a positive multiple of ``multiple`` samples."""
    extra = (-len(audio)) % multiple if len(audio) else multiple
    return np.pad(audio, (0, extra)) if extra else audio


@torch.no_grad()
def encode_clips(vae, waveforms: list[np.ndarray], batch_size: int = 16, progress: bool = False) -> list[Tensor]:
    """Normalised posterior-mean latents ``(C, ceil(T_i / hop))`` of clips ``(T_i,)``, on the CPU."""
    clips = [pad_to_multiple(np.asarray(w, dtype=np.float32), vae.hop_length) for w in waveforms]
    device = next(vae.parameters()).device
    out: list[Tensor | None] = [None] * len(clips)
    batches = groups_by_length([len(c) for c in clips], batch_size)
    for index in tqdm(batches, desc="encoding clips with the audio VAE", disable=not progress, leave=False):
        wav = torch.from_numpy(np.stack([clips[i] for i in index]))[:, None].to(device)  # (b, 1, T)
        latents = vae.encode_latents(wav).float().cpu()  # (b, C, T / hop)
        for row, i in enumerate(index):
            out[i] = latents[row]
    return out  # type: ignore[return-value]


@torch.no_grad()
def decode_latents(vae, latents: list[Tensor], batch_size: int = 16) -> list[np.ndarray]:
    """Waveforms ``(T_i · hop,)`` float32 in [-1, 1] of normalised latents ``(C, T_i)``."""
    device = next(vae.parameters()).device
    out: list[np.ndarray | None] = [None] * len(latents)
    for index in groups_by_length([z.shape[-1] for z in latents], batch_size):
        z = torch.stack([latents[i] for i in index]).to(device, torch.float32)  # (b, C, T')
        audio = vae.decode_latents(z)[:, 0].clamp(-1.0, 1.0).cpu().numpy()  # (b, T' · hop)
        for row, i in enumerate(index):
            out[i] = audio[row]
    return out  # type: ignore[return-value]


def weights_digest(module: nn.Module) -> str:
    """A short hash of a module's parameters and buffers (names, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
