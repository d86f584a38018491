"""Config -> backbone, and loading a saved backbone whatever its architecture.

A model builder in the torchtune sense: the architecture name in the config
picks the class; the classes themselves take the whole
:class:`~unidit.backbones.config.BackboneConfig` so that
``save_pretrained`` can write it to ``config.json`` beside ``model.safetensors``.
"""

import json
import os
from pathlib import Path

from torch import nn
from unidit.backbones.config import BackboneConfig
from unidit.backbones.flag_dit import FlagDiT
from unidit.backbones.mmdit import MMDiT

BACKBONES: dict[str, type[nn.Module]] = {"flag_dit": FlagDiT, "mmdit": MMDiT}


def build_backbone(config: BackboneConfig) -> FlagDiT | MMDiT:
    """A freshly initialised backbone of ``config.arch``."""
    if config.arch not in BACKBONES:
        raise ValueError(f"arch: unknown architecture {config.arch!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[config.arch](config)


def load_backbone(path: str | os.PathLike, **kwargs) -> FlagDiT | MMDiT:
    """Load a backbone saved by ``save_pretrained`` (a local folder or a Hub repo id).

    Reads ``arch`` from ``config.json`` and calls that class's
    ``from_pretrained(path, strict=True, **kwargs)`` (e.g. ``map_location``).
    """
    folder = Path(path)
    if folder.is_dir():
        config_file = folder / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"no config.json in {folder}")
    else:
        from huggingface_hub import hf_hub_download

        config_file = Path(hf_hub_download(repo_id=str(path), filename="config.json"))
    arch = json.loads(config_file.read_text()).get("arch", "flag_dit")
    if arch not in BACKBONES:
        raise ValueError(f"arch: {config_file} names unknown architecture {arch!r}; choose one of {sorted(BACKBONES)}")
    kwargs.setdefault("strict", True)
    return BACKBONES[arch].from_pretrained(path, **kwargs)
