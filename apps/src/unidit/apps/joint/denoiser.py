"""One backbone for several tasks: each task's own denoiser parts around one shared block stack.

Every task's velocity network is a :class:`~unidit.backbones.latent_denoiser.LatentDenoiser`
(patch embedding -> backbone -> head, plus what is its own: shape3d's
voxelizer and point MLP, t2v's cell layout, t2a's padding). :class:`JointDenoiser`
holds one of each, built by the task's own class at the joint width, and ties
their ``backbone`` to a single module, so the blocks, placeholders, timestep
and text conditioning are the same weights for every task (Lumina-T2X's one
backbone for every modality, Gao et al. 2024, §2; UniDiffuser's shared
transformer, Bao et al. 2023). Each task gets a learned modality embedding
from the backbone's ``num_modalities`` table, added to the timestep embedding,
so it reaches every block through adaLN; placeholders (``[nextline]``,
``[nextframe]``) are the backbone's and so shared.

``forward_mixed`` runs all tasks' samples in one varlen row (attention kept
inside each sample); ``part(name)`` is that task's ordinary denoiser, used one
task at a time (sampling, evaluation, the equivalence test).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn
from unidit.backbones.latent_denoiser import LatentDenoiser
from unidit.training.joint.row import mix_row


class JointDenoiser(nn.Module):
    """Per-task denoiser parts sharing one backbone; task ``k`` of ``parts`` has modality id ``k``."""

    def __init__(self, parts: Mapping[str, LatentDenoiser]) -> None:
        super().__init__()
        if not parts:
            raise ValueError("tasks: a joint denoiser needs at least one task")
        self.parts = nn.ModuleDict(parts)
        shared = next(iter(self.parts.values())).backbone
        configs = {name: part.backbone_config for name, part in self.parts.items()}
        if any(config != shared.config for config in configs.values()):
            raise ValueError(f"backbone: the tasks' backbone configs differ: {configs}")
        if shared.config.num_modalities < len(self.parts):
            raise ValueError(f"num_modalities: {shared.config.num_modalities} < {len(self.parts)} tasks")
        for index, part in enumerate(self.parts.values()):
            part.backbone = shared  # one module: the same weights for every task
            part.modality = index
        self.tasks = list(self.parts)

    @property
    def backbone(self) -> nn.Module:
        return next(iter(self.parts.values())).backbone

    def part(self, name: str) -> LatentDenoiser:
        if name not in self.parts:
            raise ValueError(f"task: {name!r} is not part of this joint model; it has {', '.join(self.tasks)}")
        return self.parts[name]

    def forward(self, name: str, x: Tensor, t: Tensor, context: Tensor | None = None,
                context_mask: Tensor | None = None) -> Tensor:
        """Task ``name``'s velocity on its own (its denoiser's ``forward``)."""
        return self.part(name)(x, t, context, context_mask)

    def forward_mixed(self, inputs: Mapping[str, tuple]) -> dict[str, Tensor]:
        """``{task: (x_t, t, context, context_mask, *more)}`` -> ``{task: output}`` in one backbone call.

        ``more`` goes to the task's ``slots`` after ``x_t`` and ``t`` (motion: its valid
        positions); the output is each task's head read out in its own layout (a velocity,
        or motion's logits over codes).

        Each task lays out and embeds its own samples; all of them go end to end in
        one varlen row; each task's head and read-out see only its own tokens. Equal,
        up to float rounding, to calling each part on its own batch.
        """
        names = [n for n in self.tasks if n in inputs]
        unknown = sorted(set(inputs) - set(self.tasks))
        if unknown:
            raise ValueError(f"tasks {unknown} are not part of this joint model; it has {', '.join(self.tasks)}")
        slots = [self.parts[n].slots(inputs[n][0], inputs[n][1], *inputs[n][4:]) for n in names]
        embedded = [self.parts[n].patch_embed(s.tokens) for n, s in zip(names, slots)]  # each (B_k, L_k, D)
        contexts = [None if inputs[n][2] is None else (inputs[n][2], _mask(inputs[n][2], inputs[n][3]))
                    for n in names]
        row = mix_row(slots, embedded, [self.tasks.index(n) for n in names], contexts)
        hidden = self.backbone(row.x, row.t, row.positions, row.slot_kind, row.key_mask, context=row.context,
                               context_mask=row.context_mask, modality=row.modality,
                               segment_lengths=row.segment_lengths)  # (1, T, D)
        out = {}
        for name, s, h in zip(names, slots, row.split(hidden)):
            out[name] = self.parts[name].finish(self.parts[name].head(h), s)
        return out


def _mask(context: Tensor, mask: Tensor | None) -> Tensor:
    return mask if mask is not None else context.new_ones(context.shape[:2], dtype=bool)
