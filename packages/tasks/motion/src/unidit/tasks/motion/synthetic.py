"""Embedded default data: composed procedural motions written as a HumanML3D-layout folder.

A clip is one to three actions from :mod:`~unidit.tasks.motion.animation` (walking / running forward
or backward at a speed, jumping, waving either hand, turning left / right, squatting, kicking,
sitting down, stepping sideways; with counts), converted to 263-d features by HumanML3D's pipeline
and captioned in its ``texts/<id>.txt`` format ``caption#word/POS ...#0.0#0.0`` (three phrasings
per clip). POS tags come from a small word list of this vocabulary (lemma + universal tag), an
approximation of the spaCy tags HumanML3D ships. Mean / Std follow HumanML3D's
``cal_mean_variance``: per-dimension mean, one std per feature group (root channels and contacts
divided by 5). Deterministic from the seed; cached under ``<cache>/motion/embedded-<hash>/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from unidit.tasks.motion import animation as anim
from unidit.tokenizers.motion.humanml3d import feature_slices, features_from_joints
from unidit.training.export import write_folder_atomically
from unidit.training.model_cache import cache_root

EMBEDDED_VERSION = 1
SPLITS = ("train", "val", "test")
COUNT_WORDS = {1: "once", 2: "twice", 3: "three times"}
POS = {
    "a": "DET", "the": "DET", "person": "NOUN", "someone": "PRON", "man": "NOUN", "figure": "NOUN",
    "then": "ADV", "and": "CCONJ", "forward": "ADV", "backward": "ADV", "left": "ADV", "right": "ADV",
    "quickly": "ADV", "slowly": "ADV", "once": "ADV", "twice": "ADV", "three": "NUM", "times": "NOUN",
    "with": "ADP", "their": "PRON", "hand": "NOUN", "leg": "NOUN", "down": "ADP", "sideways": "ADV",
    "to": "ADP", "in": "ADP", "place": "NOUN", "around": "ADV", "up": "ADP",
}  # fmt: skip
LEMMAS = {"walks": "walk", "runs": "run", "jumps": "jump", "waves": "wave", "turns": "turn", "squats": "squat",
          "kicks": "kick", "sits": "sit", "steps": "step"}  # fmt: skip


def _action(rng: np.random.Generator) -> tuple[anim.Segment, str]:
    kind = rng.integers(9)
    count = int(rng.integers(1, 4))
    side = "left" if rng.random() < 0.5 else "right"
    if kind in (0, 1):  # walk / run
        run, backward = kind == 1, rng.random() < 0.25 and kind == 0
        speed_word = rng.choice(["slowly", "", "quickly"]) if not run else ""
        speed = {"slowly": 0.8, "": 1.2, "quickly": 1.7}[speed_word] if not run else 3.0
        steps = int(rng.integers(3, 7))
        verb = "runs" if run else "walks"
        text = f"{verb} {'backward' if backward else 'forward'}" + (f" {speed_word}" if speed_word else "")
        return anim.gait(steps, speed, -1.0 if backward else 1.0, run), text
    if kind == 2:
        return anim.jump(count), f"jumps {COUNT_WORDS[count]}"
    if kind == 3:
        return anim.wave(count, side == "right"), f"waves {COUNT_WORDS[count]} with their {side} hand"
    if kind == 4:
        around = rng.random() < 0.3
        angle = (np.pi if around else np.pi / 2) * (1 if side == "left" else -1)
        return anim.turn(angle), "turns around" if around else f"turns {side}"
    if kind == 5:
        return anim.squat(count), f"squats {COUNT_WORDS[count]}"
    if kind == 6:
        return anim.kick(count, side == "right"), f"kicks {COUNT_WORDS[count]} with their {side} leg"
    if kind == 7:
        return anim.sit_down(), "sits down"
    steps = int(rng.integers(2, 4))
    return anim.sidestep(steps, 1.0 if side == "left" else -1.0), f"steps sideways to the {side}"


def compose_clip(rng: np.random.Generator, max_actions: int = 3) -> tuple[np.ndarray, list[str]]:
    """(T, 22, 3) joints and three captions of one composed clip; sitting down only ends a clip."""
    segments, texts = [], []
    for i in range(int(rng.integers(1, max_actions + 1))):
        segment, text = _action(rng)
        segments.append(segment)
        texts.append(text)
        if text == "sits down":
            break
    body = texts[0] if len(texts) == 1 else ", then ".join(texts[:-1]) + " and " + texts[-1]
    if len(texts) == 2:
        body = f"{texts[0]}, then {texts[1]}"
    captions = [f"{subject} {body}." for subject in ("a person", "someone", "the figure")]
    return anim.pose_skeleton(segments).astype(np.float32), captions


def tag(caption: str) -> str:
    """``word/POS`` tokens of a caption (lemmatised verbs), HumanML3D's second field."""
    words = caption.rstrip(".").replace(",", "").split()
    return " ".join(f"{LEMMAS[w]}/VERB" if w in LEMMAS else f"{w}/{POS.get(w, 'NOUN')}" for w in words)


def feature_statistics(features: list[np.ndarray], num_joints: int = 22, root_bias: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """HumanML3D-style Mean (D,) and group-averaged Std (D,) of a list of (T, D) clips."""
    stacked = np.concatenate(features).astype(np.float64)
    mean, std = stacked.mean(0), stacked.std(0)
    out = np.zeros_like(std)
    for name, group in feature_slices(num_joints).items():
        bias = root_bias if name in ("root_rot_velocity", "root_linear_velocity", "root_height", "contacts") else 1.0
        out[group] = std[group].mean() / bias
    return mean.astype(np.float32), np.maximum(out, 1e-4).astype(np.float32)


@dataclass(frozen=True)
class EmbeddedMotion:
    """Parameters of the embedded set (the cache key)."""

    seed: int = 0
    num_train: int = 600
    num_val: int = 50
    num_test: int = 100
    max_actions: int = 3

    def key(self) -> str:
        text = json.dumps({"version": EMBEDDED_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_dataset(folder: Path, params: EmbeddedMotion) -> Path:
    """Generate and write the HumanML3D layout into ``folder`` (must not exist yet or be empty)."""
    sizes = {"train": params.num_train, "val": params.num_val, "test": params.num_test}
    rngs = dict(zip(SPLITS, (np.random.default_rng(s) for s in np.random.SeedSequence(params.seed).spawn(3))))
    for sub in ("new_joints", "new_joint_vecs", "texts"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    train_features, index = [], 0
    for split in SPLITS:
        names = []
        for _ in range(sizes[split]):
            name = f"{index:06d}"
            index += 1
            joints, captions = compose_clip(rngs[split], params.max_actions)
            features = features_from_joints(joints)
            if not np.isfinite(features).all():
                raise ValueError(f"embedded clip {name} ({captions[0]!r}) has non-finite features")
            np.save(folder / "new_joints" / f"{name}.npy", joints[:-1])
            np.save(folder / "new_joint_vecs" / f"{name}.npy", features)
            lines = [f"{c}#{tag(c)}#0.0#0.0" for c in captions]
            (folder / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
            names.append(name)
            if split == "train":
                train_features.append(features)
        (folder / f"{split}.txt").write_text("\n".join(names) + "\n")
    mean, std = feature_statistics(train_features)
    np.save(folder / "Mean.npy", mean)
    np.save(folder / "Std.npy", std)
    return folder


def embedded_dataset(params: EmbeddedMotion = EmbeddedMotion(), cache_dir: str | os.PathLike | None = None) -> Path:
    """The embedded HumanML3D-layout folder, generated once and cached.

    Written through :func:`~unidit.training.export.write_folder_atomically` (a staging folder
    renamed into place, as the caption scenes and the exported models are), so a reader never
    sees a half-written set; ``done.json`` marks a complete one.
    """
    folder = cache_root(cache_dir) / "motion" / f"embedded-{params.key()}"
    if (folder / "done.json").is_file():
        return folder

    def write(staging: Path) -> None:
        write_dataset(staging, params)
        (staging / "done.json").write_text(json.dumps({"version": EMBEDDED_VERSION, **asdict(params)}))

    return write_folder_atomically(folder, write)
