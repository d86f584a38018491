"""Building blocks of the Oobleck waveform VAE.

* :class:`Snake` - the periodic activation ``x + sin^2(alpha x) / alpha`` with a
  learned per-channel ``alpha`` (Ziyin et al. 2020, "Neural networks fail to learn
  periodic functions and how to fix it"; used for audio by BigVGAN, DAC and
  Stable Audio's Oobleck). ``alpha`` is stored as its logarithm so it stays positive.
* :class:`ResidualUnit` - Snake, dilated conv (kernel 7), Snake, 1x1 conv, plus the
  input (DAC / Oobleck).
* :class:`EncoderBlock` / :class:`DecoderBlock` - residual units with dilations
  (1, 3, 9) and a strided (transposed) convolution of kernel ``2 * stride``.

Every convolution keeps hop-aligned lengths exact: an encoder level maps T samples
to T / stride frames, a decoder level maps T' frames to T' * stride samples.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm


def conv1d(in_channels: int, out_channels: int, kernel_size: int, *, weight_norm: bool, **kwargs) -> nn.Conv1d:
    """A Conv1d, weight-normalised (Salimans & Kingma 2016) when asked."""
    conv = nn.Conv1d(in_channels, out_channels, kernel_size, **kwargs)
    return apply_weight_norm(conv) if weight_norm else conv


def conv_transpose1d(
    in_channels: int, out_channels: int, kernel_size: int, *, weight_norm: bool, **kwargs
) -> nn.ConvTranspose1d:
    """A ConvTranspose1d, weight-normalised when asked."""
    conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, **kwargs)
    return apply_weight_norm(conv) if weight_norm else conv


class _SnakeFunction(torch.autograd.Function):
    """Snake with a hand-written backward that keeps only ``x`` and ``sin(alpha x)``.

    d/dx = 1 + sin(2 alpha x); d/d(log alpha) = x sin(2 alpha x) - sin^2(alpha x) / alpha.
    About 3x faster than autograd on a CPU, where these full-resolution elementwise
    passes dominate the VAE's step time.
    """

    @staticmethod
    def forward(ctx, x: Tensor, log_alpha: Tensor) -> Tensor:  # (B, C, T), (1, C, 1)
        alpha = log_alpha.exp()
        sin = torch.sin(alpha * x)  # (B, C, T)
        ctx.save_for_backward(x, sin, log_alpha)
        return x + sin * sin / alpha

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        x, sin, log_alpha = ctx.saved_tensors
        alpha = log_alpha.exp()
        sin_double = torch.sin(2 * alpha * x)  # (B, C, T)
        grad_x = grad + grad * sin_double
        grad_log_alpha = (grad * (x * sin_double - sin * sin / alpha)).sum(dim=(0, 2), keepdim=True)  # (1, C, 1)
        return grad_x, grad_log_alpha


class Snake(nn.Module):
    """``x + sin^2(alpha x) / alpha`` per channel, alpha = exp(log_alpha) (initially ``alpha``)."""

    def __init__(self, channels: int, alpha: float = 1.0):
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"Snake: alpha must be positive, got {alpha}")
        self.log_alpha = nn.Parameter(torch.full((1, channels, 1), math.log(alpha)))  # (1, C, 1)

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        log_alpha = self.log_alpha.to(x.dtype)
        if torch.is_grad_enabled() and (x.requires_grad or log_alpha.requires_grad):
            return _SnakeFunction.apply(x, log_alpha)
        return snake_inplace(x, log_alpha)


def snake_inplace(x: Tensor, log_alpha: Tensor) -> Tensor:
    """Snake without autograd: one output buffer updated in place (encode / decode at inference).

    The same operations as :class:`_SnakeFunction`'s forward in the same order, so the result is
    bit-identical; four of its five full-size temporaries are gone.
    """
    alpha = log_alpha.exp()  # (1, C, 1)
    return torch.mul(alpha, x).sin_().square_().div_(alpha).add_(x)  # (B, C, T)


class ResidualUnit(nn.Module):
    """Snake -> dilated conv -> Snake -> 1x1 conv, added to the input; length-preserving."""

    def __init__(
        self, channels: int, dilation: int, kernel_size: int = 7, weight_norm: bool = True, alpha: float = 1.0
    ):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.body = nn.Sequential(
            Snake(channels, alpha),
            conv1d(channels, channels, kernel_size, dilation=dilation, padding=padding, weight_norm=weight_norm),
            Snake(channels, alpha),
            conv1d(channels, channels, 1, weight_norm=weight_norm),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T)
        return x + self.body(x)


def residual_stack(
    channels: int, dilations: tuple[int, ...], kernel_size: int, weight_norm: bool, alpha: float
) -> list[nn.Module]:
    return [ResidualUnit(channels, d, kernel_size, weight_norm, alpha) for d in dilations]


class EncoderBlock(nn.Module):
    """Residual units at ``in_channels``, then a strided conv to ``out_channels``: T -> T / stride."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        dilations: tuple[int, ...] = (1, 3, 9),
        kernel_size: int = 7,
        weight_norm: bool = True,
        alpha: float = 1.0,
    ):
        super().__init__()
        self.stride = stride
        self.body = nn.Sequential(
            *residual_stack(in_channels, dilations, kernel_size, weight_norm, alpha),
            Snake(in_channels, alpha),
            conv1d(
                in_channels,
                out_channels,
                2 * stride,
                stride=stride,
                padding=math.ceil(stride / 2),
                weight_norm=weight_norm,
            ),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, T) -> (B, Cout, T / stride)
        return self.body(x)


class DecoderBlock(nn.Module):
    """A transposed strided conv from ``in_channels`` to ``out_channels``, then residual units: T' -> T' * stride."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        dilations: tuple[int, ...] = (1, 3, 9),
        kernel_size: int = 7,
        weight_norm: bool = True,
        alpha: float = 1.0,
    ):
        super().__init__()
        self.stride = stride
        self.body = nn.Sequential(
            Snake(in_channels, alpha),
            conv_transpose1d(
                in_channels,
                out_channels,
                2 * stride,
                stride=stride,
                padding=math.ceil(stride / 2),
                output_padding=stride % 2,  # odd strides: pad the output back to T' * stride
                weight_norm=weight_norm,
            ),
            *residual_stack(out_channels, dilations, kernel_size, weight_norm, alpha),
        )

    def forward(self, x: Tensor) -> Tensor:  # (B, Cin, T') -> (B, Cout, T' * stride)
        return self.body(x)
