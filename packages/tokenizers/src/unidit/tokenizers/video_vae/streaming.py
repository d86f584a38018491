"""Run a causal video network over a clip in time chunks, holding one chunk's activations at a time.

Every temporal operation of the video VAE looks only at the past
(:mod:`~unidit.tokenizers.video_vae.causal_conv`) and every norm works per frame,
so a clip can be cut in time and fed chunk by chunk: each causal convolution
carries the last ``kt - 1`` frames of its input over to the next chunk, and the
result equals that of the whole clip (up to float summation order). This is the
cached causal convolution of streaming video VAEs (MAGVIT-v2's causal design,
Yu et al. 2023; the feature cache of Wan 2.1's VAE, 2025): peak memory then
scales with the chunk, not the clip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from unidit.tokenizers.video_vae.causal_conv import TimeStreaming


@contextmanager
def time_streaming(module: nn.Module) -> Iterator[None]:
    """Within the block, consecutive calls of ``module`` are consecutive time chunks of one clip."""
    layers = [m for m in module.modules() if isinstance(m, TimeStreaming)]
    for layer in layers:
        layer.start_stream()
    try:
        yield
    finally:
        for layer in layers:
            layer.stop_stream()


def check_chunk(latent_frames_per_chunk: int) -> int:
    """The ``latent_frames_per_chunk`` a VAE call was given, if it is a positive int; else a clear error."""
    if isinstance(latent_frames_per_chunk, bool) or not isinstance(latent_frames_per_chunk, int) \
            or latent_frames_per_chunk < 1:
        raise ValueError(f"latent_frames_per_chunk must be a positive int or None, got {latent_frames_per_chunk!r}")
    return latent_frames_per_chunk


def chunk_bounds(frames: int, first: int, step: int) -> list[tuple[int, int]]:
    """``[start, end)`` of each chunk: ``first`` frames, then ``step`` at a time (the last may be shorter)."""
    if frames < 1 or first < 1 or step < 1:
        raise ValueError(f"need positive frame counts, got frames={frames}, first={first}, step={step}")
    bounds = [(0, min(first, frames))]
    while bounds[-1][1] < frames:
        start = bounds[-1][1]
        bounds.append((start, min(start + step, frames)))
    return bounds


def run_in_chunks(module: nn.Module, x: Tensor, bounds: list[tuple[int, int]], *args) -> Tensor:
    """``module(x[:, :, a:b], *args)`` chunk by chunk inside :func:`time_streaming`, outputs joined in time."""
    with time_streaming(module):
        outputs = [module(x[:, :, start:end], *args) for start, end in bounds]
    return torch.cat(outputs, dim=2)
