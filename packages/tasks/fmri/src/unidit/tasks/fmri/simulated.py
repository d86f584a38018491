"""A simulated NSD: the caption task's scenes seen by simulated subjects, written in NSD's own layout.

Each simulated subject has a block of "cortex" (a 3D volume) and an ROI inside
it (the voxels where a smooth random field is highest; its size differs per
subject). A voxel's response to a scene is a fixed random linear encoding of
the scene (a voxel-wise encoding model in the sense of Naselaris et al. 2011):

* **retinotopic drive**: a population receptive field (Dumoulin & Wandell 2008),
  a Gaussian over the picture (downsampled to :data:`FIELD` × :data:`FIELD`) with
  its centre, size and preferred colour-opponent channel (luminance, red–green,
  blue–yellow) read from smooth random fields over the volume, so that
  neighbouring voxels see neighbouring places (a retinotopic map);
* **semantic drive**: weights on the scene's attributes (which shapes, colours
  and sizes it holds, how many objects), again smooth over the volume;
* a smooth per-voxel mix of the two (early to higher visual cortex), a per-voxel
  gain, and independent Gaussian noise on every trial.

As in NSD, every subject sees the shared test images (the caption task's test
scenes) and its own images (a seeded draw from the caption training scenes),
each :attr:`SimulationConfig.repeats` times in one random order
(``masterordering``, the same for every subject). Betas are written as int16 ×300
``betas_sessionNN.nii.gz`` with an ``nsdgeneral.nii.gz`` mask and an
``nsd_expdesign.mat``, once per configuration, to
``<cache root>/fmri/simulated-<hash>/``, and read back by the real-format
loader (:func:`unidit.tasks.fmri.nsd.load_subject`), which averages the repeats.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import scipy.io
from einops import rearrange, reduce
from scipy.ndimage import gaussian_filter
from unidit.tasks.caption.data import CaptionSet
from unidit.tasks.caption.scene_draw import COLOURS, SHAPES, SIZES
from unidit.tasks.caption.scenes import SPLIT_SIZES, scene_split
from unidit.tasks.fmri import nsd
from unidit.tasks.fmri.responses import FmriSet
from unidit.training.export import write_folder_atomically
from unidit.training.model_cache import cache_root

SIMULATION_VERSION = "fmri-simulated-v1"  # bump whenever the simulated responses change
FIELD = 16  # side of the downsampled picture the receptive fields read
INFO_FILE = "simulation.json"


@dataclass
class SimulationConfig:
    """What the simulated NSD holds.

    Attributes:
        voxels: ROI size of each subject (one entry per subject: subj01, subj02, …).
        train_images: each subject's own images (drawn from the caption training scenes).
        num_test: shared test images (the first caption test scenes), seen by every subject.
        repeats: presentations of each image (averaged at load, as in NSD).
        trials_per_session: trials in one betas file; ``repeats × (train_images + num_test)`` must be a multiple.
        noise: std of the trial noise, relative to a unit-variance signal.
        semantic: average weight of the semantic drive (0 = retinotopic only, 1 = semantic only).
        smoothness: std, in voxels, of the Gaussian that smooths the random fields over the volume.
        seed: seed of the subjects' anatomy, tuning, image draws, trial order and noise.
        scene_seed: seed of the caption scenes.
        scene_sizes: sizes of the caption scene splits drawn from (default: the caption task's).
    """

    voxels: list[int] = field(default_factory=lambda: [1500, 1200, 1000, 800])
    train_images: int = 550
    num_test: int = 200
    repeats: int = 3
    trials_per_session: int = 750
    noise: float = 1.5
    semantic: float = 0.5
    smoothness: float = 2.0
    seed: int = 0
    scene_seed: int = 0
    scene_sizes: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if not self.voxels or any(int(v) < 2 for v in self.voxels):
            raise ValueError(f"voxels: expected one ROI size >= 2 per subject, got {self.voxels}")
        sizes = {**SPLIT_SIZES, **(self.scene_sizes or {})}
        if not 1 <= self.num_test <= sizes["test"]:
            raise ValueError(f"num_test: expected 1..{sizes['test']} (the caption test scenes), got {self.num_test}")
        if not 1 <= self.train_images <= sizes["train"]:
            raise ValueError(f"train_images: expected 1..{sizes['train']} (the caption training scenes), "
                             f"got {self.train_images}")
        trials = self.repeats * (self.train_images + self.num_test)
        if self.repeats < 1 or self.trials_per_session < 1 or trials % self.trials_per_session:
            raise ValueError(f"repeats x (train_images + num_test) = {trials} trials must fill whole sessions of "
                             f"trials_per_session = {self.trials_per_session}")
        if self.noise < 0 or not 0.0 <= self.semantic <= 1.0:
            raise ValueError(f"noise >= 0 and semantic in [0, 1] expected, got {self.noise}, {self.semantic}")

    @property
    def sessions(self) -> int:
        return self.repeats * (self.train_images + self.num_test) // self.trials_per_session

    @property
    def shape_sizes(self) -> dict[str, int]:
        return {**SPLIT_SIZES, **(self.scene_sizes or {})}


def simulation_folder(config: SimulationConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    key = hashlib.sha256(json.dumps({"version": SIMULATION_VERSION, **asdict(config), "field": FIELD},
                                    sort_keys=True).encode()).hexdigest()[:16]
    return cache_root(cache_dir) / "fmri" / f"simulated-{key}"


def scene_stimuli(config: SimulationConfig, cache_dir: str | os.PathLike | None = None) -> CaptionSet:
    """Every scene a subject may see: id ``j < num_test`` is test scene j, id ``num_test + i`` training scene i."""
    sizes = config.shape_sizes
    test = scene_split("test", seed=config.scene_seed, sizes=sizes, cache_dir=cache_dir).subset(range(config.num_test))
    train = scene_split("train", seed=config.scene_seed, sizes=sizes, cache_dir=cache_dir)
    ids = list(range(len(test) + len(train)))
    return CaptionSet(ids, test.image_paths + train.image_paths, test.captions + train.captions,
                      (test.objects + train.objects) if test.objects and train.objects else [])


def simulated_nsd(config: SimulationConfig | None = None, cache_dir: str | os.PathLike | None = None,
                  zscore_sessions: bool = True) -> FmriSet:
    """The simulated subjects' trial-averaged responses and their scenes (simulated and cached on first use)."""
    config = config or SimulationConfig()
    stimuli = scene_stimuli(config, cache_dir)
    folder = simulation_folder(config, cache_dir)
    if not (folder / INFO_FILE).is_file():
        write_folder_atomically(folder, lambda staging: write_simulation(staging, config, stimuli))
    info = json.loads((folder / INFO_FILE).read_text())
    design = nsd.read_design(nsd.design_path(folder))
    subjects = {}
    for number in range(1, len(info["voxels"]) + 1):
        responses = nsd.load_subject(folder, number, list(range(1, info["sessions"] + 1)), design=design,
                                     trials_per_session=info["trials_per_session"], zscore_sessions=zscore_sessions,
                                     shared_count=info["shared_count"])
        subjects[responses.subject] = responses
    return FmriSet(subjects, stimuli)


# -- the encoding model ----------------------------------------------------------------------
def scene_attributes(objects: list[list[dict]]) -> np.ndarray:
    """``(N, A)`` counts of each shape, colour and size in a scene, and a one-hot of its object count (1–3)."""
    names = [*SHAPES, *COLOURS, *SIZES]
    out = np.zeros((len(objects), len(names) + 3), dtype=np.float32)
    for n, scene in enumerate(objects):
        for o in scene:
            for key in ("shape", "colour", "size"):
                out[n, names.index(o[key])] += 1
        out[n, len(names) + min(len(scene), 3) - 1] = 1
    return out


def opponent_field(pictures: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, FIELD², 3)``: luminance, red–green, blue–yellow contrast to the background."""
    rgb = pictures.astype(np.float32) / 255.0
    rgb = rgb - rgb[:, :1, :1, :]  # the corner is background: contrast against it
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    channels = np.stack([(r + g + b) / 3, r - g, b - (r + g) / 2], axis=-1)  # (N, H, W, 3)
    pooled = reduce(channels, "n (h p) (w q) c -> n h w c", "mean", h=FIELD, w=FIELD)  # (N, F, F, 3)
    return rearrange(pooled, "n h w c -> n (h w) c")


def _smooth_fields(rng: np.random.Generator, shape: tuple[int, ...], count: int, sigma: float,
                   mask: np.ndarray) -> np.ndarray:
    """``(count, V)`` random fields smoothed over the volume, each z-scored over the ROI voxels."""
    fields = np.stack([gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")[mask] for _ in range(count)])
    return (fields - fields.mean(1, keepdims=True)) / fields.std(1, keepdims=True)


def _uniform(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` mapped to (0, 1): a smooth field made evenly spread (every place of the picture covered)."""
    return (np.argsort(np.argsort(values)) + 0.5) / len(values)


@dataclass
class SimulatedSubject:
    """The fixed anatomy and tuning of one subject."""

    mask: np.ndarray  # (X, Y, Z) bool ROI
    fields: np.ndarray  # (V, FIELD²) receptive fields (rows sum to 1)
    colour: np.ndarray  # (V, 3) colour-opponent weights
    semantic: np.ndarray  # (V, A) attribute weights
    mix: np.ndarray  # (V,) weight of the semantic drive
    gain: np.ndarray  # (V,)

    @classmethod
    def draw(cls, rng: np.random.Generator, voxels: int, config: SimulationConfig, attributes: int
             ) -> "SimulatedSubject":
        side = int(np.ceil((4 * voxels) ** (1 / 3)))  # the ROI fills about a quarter of a cube
        shape = (side, side, side)
        anatomy = gaussian_filter(rng.normal(size=shape), config.smoothness * 1.5, mode="wrap").ravel()
        mask = np.zeros(anatomy.size, dtype=bool)
        mask[np.argsort(anatomy)[-voxels:]] = True
        mask = mask.reshape(shape)
        sigma = config.smoothness
        centre = _smooth_fields(rng, shape, 2, sigma * 2, mask)  # (2, V): slowly varying position
        cx, cy = (_uniform(c) * FIELD for c in centre)
        size = 0.7 + 2.0 * _uniform(_smooth_fields(rng, shape, 1, sigma * 2, mask)[0])  # (V,) in field cells
        grid = np.arange(FIELD) + 0.5
        gx = np.exp(-0.5 * ((grid[None] - cx[:, None]) / size[:, None]) ** 2)  # (V, F)
        gy = np.exp(-0.5 * ((grid[None] - cy[:, None]) / size[:, None]) ** 2)  # (V, F)
        fields = rearrange(gy[:, :, None] * gx[:, None, :], "v h w -> v (h w)")  # (V, F²)
        fields /= fields.sum(1, keepdims=True)
        colour = _smooth_fields(rng, shape, 3, sigma, mask).T  # (V, 3)
        semantic = _smooth_fields(rng, shape, attributes, sigma, mask).T  # (V, A)
        mix_field = _uniform(_smooth_fields(rng, shape, 1, sigma * 2, mask)[0])  # (V,) in (0, 1)
        mix = np.clip(config.semantic + (mix_field - 0.5), 0.0, 1.0)
        gain = np.exp(0.3 * rng.normal(size=voxels))
        return cls(mask, fields.astype(np.float32), colour.astype(np.float32), semantic.astype(np.float32),
                   mix.astype(np.float32), gain.astype(np.float32))

    def signal(self, field: np.ndarray, attributes: np.ndarray, reference: tuple) -> np.ndarray:
        """``(N, FIELD², 3)`` pictures and ``(N, A)`` attributes -> ``(N, V)`` noise-free responses.

        ``reference`` holds the mean / std of each drive over a fixed image set, so a scene's
        response does not depend on which other scenes are simulated with it.
        """
        retinal = np.einsum("vp,npc,vc->nv", self.fields, field, self.colour)  # (N, V)
        semantic = attributes @ self.semantic.T  # (N, V)
        (rm, rs), (sm, ss) = reference
        drive = (1 - self.mix) * (retinal - rm) / rs + self.mix * (semantic - sm) / ss  # (N, V)
        return self.gain * drive

    def reference(self, field: np.ndarray, attributes: np.ndarray) -> tuple:
        retinal = np.einsum("vp,npc,vc->nv", self.fields, field, self.colour)
        semantic = attributes @ self.semantic.T
        return ((retinal.mean(0), retinal.std(0) + 1e-6), (semantic.mean(0), semantic.std(0) + 1e-6))


def write_simulation(folder: Path, config: SimulationConfig, stimuli: CaptionSet) -> None:
    """Draw the subjects and write their betas, masks and the design in NSD's layout under ``folder``."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 23]))
    images = config.train_images + config.num_test
    train_pool = len(stimuli) - config.num_test
    subjectim = np.stack([np.concatenate([np.arange(config.num_test),
                                          config.num_test + rng.choice(train_pool, config.train_images, replace=False)])
                          for _ in config.voxels]) + 1  # (S, images), 1-based stimulus ids
    masterordering = np.concatenate([rng.permutation(images) for _ in range(config.repeats)]) + 1  # (T,) 1-based
    design = nsd.design_path(folder)
    design.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(design, {"masterordering": masterordering[None], "subjectim": subjectim})
    needed = np.unique(subjectim) - 1
    pictures = stimuli.subset(needed).images()  # (M, 64, 64, 3)
    field = np.zeros((len(stimuli), FIELD * FIELD, 3), dtype=np.float32)
    field[needed] = opponent_field(pictures)
    attributes = np.zeros((len(stimuli), len(SHAPES) + len(COLOURS) + len(SIZES) + 3), dtype=np.float32)
    attributes[needed] = scene_attributes([stimuli.objects[i] for i in needed])
    test = np.arange(config.num_test)
    for number, voxels in enumerate(config.voxels, start=1):
        subject = SimulatedSubject.draw(rng, int(voxels), config, attributes.shape[1])
        reference = subject.reference(field[test], attributes[test])  # drives standardised on the shared images
        shown = masterordering - 1  # (T,) column of subjectim
        ids = subjectim[number - 1, shown] - 1  # (T,) stimulus of each trial
        betas = subject.signal(field[ids], attributes[ids], reference)  # (T, V)
        betas = betas + config.noise * rng.normal(size=betas.shape)
        path = nsd.mask_path(folder, number)
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.where(subject.mask, 1, -1).astype(np.int16), np.eye(4)), path)
        volume = np.zeros((*subject.mask.shape, len(betas)), dtype=np.int16)
        volume[subject.mask] = np.clip(np.round(betas * nsd.BETA_SCALE), -32768, 32767).astype(np.int16).T
        for session in range(config.sessions):
            part = slice(session * config.trials_per_session, (session + 1) * config.trials_per_session)
            file = nsd.betas_path(folder, number, session + 1)
            file.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(volume[..., part], np.eye(4)), file)
    info = {"version": SIMULATION_VERSION, "config": asdict(config), "voxels": [int(v) for v in config.voxels],
            "sessions": config.sessions, "trials_per_session": config.trials_per_session,
            "shared_count": config.num_test}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2))
