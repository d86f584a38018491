"""Shared diffusion-transformer backbones of unidit.

Building blocks (RMSNorm, axial 3D RoPE, attention, SwiGLU, timestep and
adaLN conditioning) and the two backbones that share one forward contract:
:class:`FlagDiT` (Lumina-T2X) and :class:`MMDiT` (Stable Diffusion 3), sized
by :data:`PRESETS` and built from a :class:`BackboneConfig`; the layout that
turns any latent into one token sequence; the rectified-flow objective, its
samplers and classifier-free guidance; the offline text encoder.
"""

from unidit.backbones.build import build_backbone, load_backbone
from unidit.backbones.config import PRESETS, BackboneConfig, backbone_config
from unidit.backbones.flag_dit import FlagDiT
from unidit.backbones.guidance import GuidedModel, cfg_combine
from unidit.backbones.layout import PackedBatch, pack, pack_varlen, unpack, unpack_stacked
from unidit.backbones.mmdit import MMDiT
from unidit.backbones.rectified_flow import Conditioning, RectifiedFlow
from unidit.backbones.samplers import SAMPLERS
from unidit.backbones.time_schedule import timestep_schedule
from unidit.backbones.text_encoder import CaptionEmbeddingCache, TextEncoder, default_text_encoder_path

__all__ = [
    "SAMPLERS",
    "CaptionEmbeddingCache",
    "Conditioning",
    "GuidedModel",
    "PackedBatch",
    "RectifiedFlow",
    "TextEncoder",
    "cfg_combine",
    "default_text_encoder_path",
    "pack",
    "pack_varlen",
    "timestep_schedule",
    "unpack",
    "unpack_stacked",
    "PRESETS",
    "BackboneConfig",
    "FlagDiT",
    "MMDiT",
    "backbone_config",
    "build_backbone",
    "load_backbone",
]
