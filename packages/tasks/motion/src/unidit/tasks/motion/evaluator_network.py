"""The motion / text co-embedding that judges generated motions (Guo et al., CVPR 2022, §4 "evaluation").

Guo et al. ("Generating Diverse and Natural 3D Human Motions from Text") score text-to-motion
models with a motion encoder and a text encoder trained jointly so that a caption lands near the
motions it describes; FID, R-precision, MM-distance, diversity and multimodality are all measured
in that shared space (T2M-GPT and MoMask reuse their released weights). Theirs are a convolutional
movement encoder (two stride-2 convolutions, one position per 4 frames) followed by a
bidirectional GRU over motion, and a bidirectional GRU over GloVe word vectors plus part-of-speech
one-hots for text. Here the same two towers are small and trained on the task's own data:

- **motion**: raw HumanML3D features ``(B, T, D)``, normalised by buffers holding the training
  split's Mean / Std, two stride-2 convolutions (kernel 4, LeakyReLU) to ``T // 4`` positions, a
  bidirectional GRU over the valid positions, its two final states projected to the embedding;
- **text**: the frozen MiniLM hidden states of the caption's tokens ``(B, S, 384)`` (the encoder the
  task conditions on), a linear layer, a bidirectional GRU, the same projection head.

Embeddings are not normalised: distances are Euclidean, as in Guo et al.'s metrics.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence
from unidit.training.evaluator import EvaluatorNetwork

FRAMES_PER_POSITION = 4  # the two stride-2 convolutions


def projection(hidden: int, embed_dim: int) -> nn.Sequential:
    """The two GRU final states ``(B, 2H)`` -> an embedding ``(B, E)``."""
    return nn.Sequential(nn.Linear(2 * hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, embed_dim))


def final_states(gru: nn.GRU, sequence: Tensor, lengths: Tensor) -> Tensor:
    """Both directions' last states ``(B, 2H)`` of a bidirectional GRU over ``sequence[b, :lengths[b]]``."""
    packed = pack_padded_sequence(sequence, lengths.cpu(), batch_first=True, enforce_sorted=False)
    _, states = gru(packed)  # (2, B, H), in the batch's own order
    return rearrange(states, "d b h -> b (d h)")


class MotionTextEvaluator(EvaluatorNetwork):
    """Motion tower and text tower of one co-embedding (see the module docstring).

    Args:
        feature_dim: motion feature width (263 HumanML3D, 251 KIT-ML).
        text_dim: width of the frozen text encoder's hidden states (384 for MiniLM-L6).
        hidden: GRU / convolution width of both towers.
        embed_dim: width of the shared embedding (the space of FID and the distances).
    """

    def __init__(self, feature_dim: int = 263, text_dim: int = 384, hidden: int = 128, embed_dim: int = 32) -> None:
        super().__init__()
        self.feature_dim, self.text_dim, self.embed_dim = feature_dim, text_dim, embed_dim
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.motion_conv = nn.Sequential(
            nn.Conv1d(feature_dim, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.motion_gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.motion_head = projection(hidden, embed_dim)
        self.text_in = nn.Sequential(nn.Linear(text_dim, hidden), nn.LeakyReLU(0.2))
        self.text_gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.text_head = projection(hidden, embed_dim)

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Normalise motions by the training split's ``mean`` / ``std`` ``(D,)`` (saved with the weights)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def embed_motion(self, features: Tensor, lengths: Tensor) -> Tensor:
        """Raw features ``(B, T, D)`` (zero-padded after ``lengths[b] >= 4`` frames) -> ``(B, E)``."""
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"motion evaluator: expected features (B, T, {self.feature_dim}), "
                             f"got {tuple(features.shape)}")
        if int(lengths.min()) < FRAMES_PER_POSITION:
            raise ValueError(f"motion evaluator: every motion needs at least {FRAMES_PER_POSITION} frames, "
                             f"got lengths {lengths.tolist()}")
        frames = torch.arange(features.shape[1], device=features.device)[None] < lengths[:, None]  # (B, T)
        x = (features - self.mean) / self.std * frames[..., None]  # (B, T, D), padding kept at 0
        x = self.motion_conv(rearrange(x, "b t d -> b d t"))  # (B, H, T // 4)
        positions = torch.clamp(lengths // FRAMES_PER_POSITION, 1, x.shape[-1])  # (B,)
        return self.motion_head(final_states(self.motion_gru, rearrange(x, "b h t -> b t h"), positions))

    def embed_text(self, states: Tensor, lengths: Tensor) -> Tensor:
        """Frozen token states ``(B, S, text_dim)`` (valid for ``lengths[b]`` tokens) -> ``(B, E)``."""
        if states.shape[-1] != self.text_dim:
            raise ValueError(f"motion evaluator: expected text states (B, S, {self.text_dim}), "
                             f"got {tuple(states.shape)}")
        return self.text_head(final_states(self.text_gru, self.text_in(states), lengths.clamp_min(1)))

    def embed(self, inputs: tuple[Tensor, Tensor]) -> Tensor:
        """The Fréchet space: motion embeddings ``(B, E)`` of ``(features (B, T, D), lengths (B,))``."""
        return self.embed_motion(*inputs)
