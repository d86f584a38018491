"""The captioner's image features: what the fMRI mappers predict and the caption model decodes.

The diffusion captioner (:class:`unidit.tasks.caption.task.CaptionTask`, LaDiC)
reads a picture as ``S`` context tokens of width ``Dc`` from its image encoder
(``denoiser.image_context``). Brain Captioning regresses fMRI onto such
features of a frozen image model; here the target of every mapper is the
flattened ``(S·Dc,)`` context of the caption model's EMA network, and the
prediction is folded back to ``(S, Dc)`` and decoded with
``CaptionTask.captions_from_context``.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from unidit.tasks.caption.data import CaptionSet
from unidit.tasks.caption.image_encoder import images_to_tensor


def context_shape(task) -> tuple[int, int]:
    """``(S, Dc)``: context tokens per picture and their width."""
    return tuple(int(n) for n in task.sampling_network().null_context.shape)


@torch.no_grad()
def image_features(task, stimuli: CaptionSet, batch_size: int = 100) -> np.ndarray:
    """``(N, S·Dc)`` float32 flattened image context of each picture of ``stimuli``, in order."""
    network = task.sampling_network().eval()
    size = network.config.image_size
    out = []
    for start in range(0, len(stimuli), batch_size):
        part = stimuli.subset(range(start, min(start + batch_size, len(stimuli))))
        pictures = images_to_tensor(part.images(size)).to(task.device)  # (B, 3, H, W)
        context, _ = network.image_context(pictures)  # (B, S, Dc)
        out.append(rearrange(context, "b s d -> b (s d)").float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, int(np.prod(context_shape(task)))), dtype=np.float32)


def as_context(features: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """``(N, S·Dc)`` features -> ``(N, S, Dc)`` context tokens; a width not matching the captioner is an error."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[1] != shape[0] * shape[1]:
        raise ValueError(f"features: expected (N, {shape[0] * shape[1]}) = (N, S x Dc) for the captioner's "
                         f"{shape[0]} x {shape[1]} context, got {features.shape}")
    return rearrange(torch.from_numpy(features), "n (s d) -> n s d", s=shape[0])
