"""Multi-scale STFT discriminator with hinge and feature-matching losses (EnCodec).

Défossez et al. 2022, "High Fidelity Neural Audio Compression", §3.4: each
sub-discriminator reads the complex STFT (real and imaginary parts as two channels)
at one resolution through 2D convolutions (kernel 3x9, time dilations 1, 2, 4,
frequency stride 2, LeakyReLU 0.2) and outputs a logit map. The generator gets a
hinge adversarial loss plus a feature-matching loss (L1 between the discriminator's
activations on real and reconstructed audio, relative to the real activations' scale).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm


def _conv2d(in_channels: int, out_channels: int, kernel: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> nn.Module:
    padding = ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)
    return weight_norm(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, dilation=dilation, padding=padding))


class STFTDiscriminator(nn.Module):
    """One resolution: complex STFT (B, 2, N, F) -> logits (B, 1, N, F') and feature maps."""

    def __init__(self, n_fft: int, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        layers = [_conv2d(2, channels, (3, 9))]
        layers += [_conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(d, 1)) for d in dilations]
        layers += [_conv2d(channels, channels, (3, 3))]
        self.layers = nn.ModuleList(layers)
        self.post = _conv2d(channels, 1, (3, 3))
        self.activation = nn.LeakyReLU(0.2)

    def forward(self, wav: Tensor) -> tuple[Tensor, list[Tensor]]:  # (B, 1, T)
        spec = torch.stft(
            wav[:, 0], self.n_fft, hop_length=self.n_fft // 4, window=self.window, normalized=True, return_complex=True
        )  # (B, F, N)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, N, F)
        features = []
        for layer in self.layers:
            x = self.activation(layer(x))  # (B, C, N, F_i)
            features.append(x)
        return self.post(x), features  # (B, 1, N, F_last), [(B, C, N, F_i)]


class MultiScaleSTFTDiscriminator(nn.Module):
    """Sub-discriminators at several FFT sizes (EnCodec: 1024, 2048, 512 at 24 kHz)."""

    def __init__(self, fft_sizes: tuple[int, ...] = (1024, 2048, 512), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, channels) for n in fft_sizes)

    def forward(self, wav: Tensor) -> list[tuple[Tensor, list[Tensor]]]:
        return [d(wav) for d in self.discriminators]


def discriminator_hinge_loss(
    real: list[tuple[Tensor, list[Tensor]]], fake: list[tuple[Tensor, list[Tensor]]]
) -> Tensor:
    """Mean over scales of E[relu(1 - D(real))] + E[relu(1 + D(fake))]."""
    losses = [
        torch.relu(1 - real_logits).mean() + torch.relu(1 + fake_logits).mean()
        for (real_logits, _), (fake_logits, _) in zip(real, fake)
    ]
    return torch.stack(losses).mean()


def generator_hinge_loss(fake: list[tuple[Tensor, list[Tensor]]]) -> Tensor:
    """Mean over scales of E[relu(1 - D(fake))]."""
    return torch.stack([torch.relu(1 - logits).mean() for logits, _ in fake]).mean()


def feature_matching_loss(real: list[tuple[Tensor, list[Tensor]]], fake: list[tuple[Tensor, list[Tensor]]]) -> Tensor:
    """Mean over scales and layers of |f(real) - f(fake)|_1 / mean |f(real)| (real features detached)."""
    losses = [
        (real_f.detach() - fake_f).abs().mean() / (real_f.detach().abs().mean() + 1e-8)
        for (_, real_features), (_, fake_features) in zip(real, fake)
        for real_f, fake_f in zip(real_features, fake_features)
    ]
    return torch.stack(losses).mean()
