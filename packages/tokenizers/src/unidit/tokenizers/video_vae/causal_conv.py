"""Causal 3D convolution: the past is padded, the future never seen.

LTX-Video (HaCohen et al. 2024, the video VAE section) makes every temporal convolution of
its VAE causal by padding only the start of the time axis, with copies of the
first frame, so that output frame ``t`` depends on input frames ``<= t``. A
video of one frame is then encoded exactly like an image, and a clip's first
frame is encoded on its own. Space is zero-padded symmetrically ("same").

Because nothing looks ahead, a clip can also go through in consecutive time
chunks (:mod:`unidit.tokenizers.video_vae.streaming`): each convolution keeps
the last ``kt - 1`` frames of its input and prepends them to the next chunk in
place of the first-frame padding, so the chunks give the same output as the
whole clip while only one chunk's activations are alive at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TimeStreaming(nn.Module):
    """A layer that can take a clip in consecutive time chunks.

    Outside a stream every call is a whole clip. Between :meth:`start_stream` and
    :meth:`stop_stream` each call continues the clip of the call before;
    :attr:`continuing` says whether an earlier chunk was seen.
    """

    def __init__(self):
        super().__init__()
        self.streaming = False
        self.continuing = False

    def start_stream(self) -> None:
        self.streaming, self.continuing = True, False
        self.forget_past()

    def stop_stream(self) -> None:
        self.streaming, self.continuing = False, False
        self.forget_past()

    def chunk_done(self) -> None:
        """Called by :meth:`forward` implementations after each chunk."""
        self.continuing = self.streaming

    def forget_past(self) -> None:
        """Drop any frames carried over from an earlier chunk."""


class CausalConv3d(TimeStreaming):
    """``Conv3d`` with "same" spatial padding and first-frame replicate padding in the past only.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: ``k`` or ``(kt, kh, kw)``; spatial sides must be odd.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int, int] = 3):
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel sides must be odd for 'same' padding, got {(kt, kh, kw)}")
        self.time_pad = kt - 1
        self.conv = nn.Conv3d(in_channels, out_channels, (kt, kh, kw), padding=(0, kh // 2, kw // 2))
        self.past: Tensor | None = None  # (B, C, kt - 1, H, W): the tail of the previous chunk's padded input

    def forget_past(self) -> None:
        self.past = None

    def pad(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W) -> (B, C, T + kt - 1, H, W)``: the chunk with the past its convolution sees."""
        if self.time_pad:
            x = torch.cat([self.past, x], dim=2) if self.continuing else pad_past(x, self.time_pad)
            if self.streaming:  # a copy, so the chunk's input can be freed
                self.past = x[:, :, -self.time_pad :].clone()  # (B, C, kt - 1, H, W)
        self.chunk_done()
        return x

    def convolve(self, padded: Tensor) -> Tensor:
        """The convolution of a :meth:`pad`-ded chunk: ``(B, C, T + kt - 1, H, W) -> (B, C_out, T, H, W)``.

        For a single fp32 clip on the CPU, PyTorch routes small 3D convolutions to
        its im2col kernel, whose column buffer holds ``C * kt*kh*kw * T*H*W``
        values: 46 MiB for a 48-channel 9 x 32 x 32 input, many times the
        activations. oneDNN's direct convolution needs a copy of the weight
        instead (``C_out * C * kt*kh*kw``), so it is used wherever that is the
        smaller of the two (``T*H*W > C_out``). Batches of two or more already
        go to oneDNN.
        """
        conv = self.conv
        if padded.shape[0] == 1 and padded.dtype == torch.float32 and padded.device.type == "cpu" \
                and not torch.is_autocast_enabled("cpu") \
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled \
                and padded.shape[2:].numel() > conv.out_channels:
            return torch.mkldnn_convolution(padded, conv.weight, conv.bias, conv.padding, conv.stride,
                                            conv.dilation, conv.groups)
        return conv(padded)

    def forward(self, x: Tensor) -> Tensor:
        return self.convolve(self.pad(x))  # (B, C, T, H, W) -> (B, C_out, T, H, W)


def pad_past(x: Tensor, frames: int) -> Tensor:
    """Prepend ``frames`` copies of the first frame: ``(B, C, T, H, W) -> (B, C, T + frames, H, W)``."""
    if frames == 0:
        return x
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)
