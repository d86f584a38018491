"""``unidit fit|sample|eval motion-vq``: the motion VQ-VAE (T2M-GPT, Zhang et al., CVPR 2023, §3.1).

``fit`` trains :class:`~unidit.tokenizers.motion.MotionVQTraining` with LightningCLI from
``fit.yaml`` (every field overridable) on the motion task's embedded clips or a HumanML3D / KIT-ML
folder, exports ``<run>/model`` (config.json + model.safetensors, the dataset's Mean / Std kept as
buffers) and writes ``<run>/report/metrics.json`` with the printed metric table (MPJPE, feature L2,
codebook usage and perplexity on the held-out split, beside trivial baselines). ``sample``
reconstructs one 263-d (KIT: 251-d) ``.npy`` clip; ``eval`` prints the table of an exported model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from unidit.apps.arguments import UsageError, UsageParser, input_file, output_folder
from unidit.apps.motion_vq.data import MotionVQData
from unidit.apps.motion_vq.report import evaluate_sets, format_table
from unidit.apps.task_cli import build_cli, fit_cli, resolve_ckpt_path, run_directory, step_summary
from unidit.tasks.motion.data import FORMATS, load_split, read_array
from unidit.tokenizers.motion import MotionVQTraining, MotionVQVAE, mpjpe_mm, recover_from_ric
from unidit.training.export import write_folder_atomically
from unidit.training.report import write_json_atomically

CONFIG_DIR = Path(__file__).parent
FIT_CONFIG = CONFIG_DIR / "fit.yaml"
MODEL_CLASS, DATA_CLASS, EXTRA_GROUPS = MotionVQTraining, MotionVQData, {}


def fit(argv: list[str]) -> Path:
    started = time.perf_counter()
    cli = build_cli(MODEL_CLASS, DATA_CLASS, FIT_CONFIG, argv, EXTRA_GROUPS)
    check_widths(cli.model.vqvae, cli.datamodule)
    fit_cli(cli, resolve_ckpt_path(cli.trainer, cli.config.get("ckpt_path")))
    run_dir = run_directory(cli.trainer)
    if not cli.trainer.is_global_zero:
        return run_dir
    vqvae, data = cli.model.vqvae.cpu().eval(), cli.datamodule
    model_dir = write_folder_atomically(run_dir / "model", vqvae.save_pretrained)
    print(f"exported the motion VQ-VAE ({vqvae.config.codebook_size} codes, 1 per {vqvae.frames_per_code} frames) to {model_dir}")
    held_out = "embedded test" if data.hparams.source == "embedded" else f"folder {Path(data.hparams.folder).name} test"
    extra = {"train_steps": int(cli.trainer.global_step), "fit_seconds": round(time.perf_counter() - started, 1)}
    evaluate_and_write(vqvae, {held_out: data.test_clips()}, run_dir / "report", extra)
    print(step_summary(cli.trainer), flush=True)
    return run_dir


def check_widths(vqvae: MotionVQVAE, data: MotionVQData) -> None:
    """The model's feature width / joints must be the data's (KIT-ML needs ``--model.vqvae`` overrides)."""
    if (vqvae.config.feature_dim, vqvae.config.num_joints) != (data.feature_dim, data.num_joints):
        raise UsageError(
            f"data.kind {data.hparams.kind!r} has {data.feature_dim}-d features of {data.num_joints} joints, but the model "
            f"expects {vqvae.config.feature_dim}-d / {vqvae.config.num_joints} joints: pass "
            f"--model.vqvae '{{feature_dim: {data.feature_dim}, num_joints: {data.num_joints}}}'"
        )


def load_vqvae(path: str | Path) -> MotionVQVAE:
    """A :class:`MotionVQVAE` from an export directory (``<run>/model``) or a Lightning ``.ckpt``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path} (expected <run>/model or a .ckpt file)")
    if path.is_dir():
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"{path} is not an exported motion VQ-VAE: expected config.json and model.safetensors")
        return MotionVQVAE.from_pretrained(str(path)).eval()
    try:
        module = MotionVQTraining.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, truncated or foreign files
        raise ValueError(f"cannot load {path} as a motion VQ-VAE Lightning checkpoint: {error}") from error
    return module.vqvae.eval()


def kind_of(vqvae: MotionVQVAE) -> str:
    """``humanml3d`` or ``kit`` from the model's feature width."""
    for kind, fmt in FORMATS.items():
        if fmt["dim"] == vqvae.config.feature_dim:
            return kind
    raise ValueError(f"a {vqvae.config.feature_dim}-d model matches no dataset format ({FORMATS})")


def evaluate_and_write(vqvae: MotionVQVAE, sets: dict, out: Path | None, extra: dict | None = None) -> dict:
    """Print the metric table of ``sets``; with ``out`` also write ``out/metrics.json``."""
    results = evaluate_sets(vqvae, sets)
    if not results:
        raise ValueError("nothing to evaluate: every set is empty")
    print(format_table(results))
    config = vqvae.config
    metrics = {
        "sets": results,
        "model": {
            "architecture": config.architecture,
            "codebook_size": config.codebook_size,
            "num_quantizers": config.num_quantizers,
            "frames_per_code": vqvae.frames_per_code,
            "parameters": sum(p.numel() for p in vqvae.parameters()),
        },
        **(extra or {}),
    }
    if out is not None:
        path = write_json_atomically(Path(out) / "metrics.json", metrics)
        (Path(out) / "metrics.txt").write_text(format_table(results) + "\n")
        print(f"wrote {path}")
    return metrics


def evaluate(argv: list[str]) -> dict:
    parser = UsageParser(prog="unidit eval motion-vq", description="Print the motion VQ-VAE's reconstruction metrics.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--folder", default=None, help="a HumanML3D / KIT-ML folder to evaluate instead of the embedded clips")
    parser.add_argument("--split", default="test", help="split list of the folder (train / val / test)")
    parser.add_argument("--min_frames", type=int, default=17, help="skip (and count) clips shorter than this")
    parser.add_argument("--max_clips", type=int, default=None, help="evaluate only the first N clips")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded data")
    parser.add_argument("--cache_dir", default=None, help="cache of the embedded data")
    parser.add_argument("--out", default=None, help="also write metrics.json here")
    args = parser.parse_args(argv)
    vqvae = load_vqvae(args.ckpt)
    if args.folder:
        split = load_split(args.folder, args.split, kind_of(vqvae), min_frames=args.min_frames)
        name = f"folder {Path(args.folder).name} {args.split}"
        clips = [torch.from_numpy(c.features) for c in split.clips]
    else:
        data = MotionVQData(seed=args.seed, cache_dir=args.cache_dir, min_frames=args.min_frames)
        name, clips = "embedded test", data.test_clips()
    out = output_folder(args.out) if args.out else None
    return evaluate_and_write(vqvae, {name: clips[: args.max_clips]}, out)


def sample(argv: list[str]) -> Path:
    parser = UsageParser(prog="unidit sample motion-vq", description="Reconstruct a motion clip through the VQ-VAE.")
    parser.add_argument("--ckpt", required=True, help="export directory (<run>/model) or Lightning .ckpt")
    parser.add_argument("--motion", required=True, help="(T, 263) HumanML3D (or (T, 251) KIT-ML) features, .npy, not normalised")
    parser.add_argument("--out", required=True, help="folder for <name>_recon.npy, <name>_joints.npy and <name>_codes.npy")
    args = parser.parse_args(argv)
    vqvae = load_vqvae(args.ckpt)
    path, out = input_file(args.motion, "--motion"), output_folder(args.out)
    clip = read_motion(path, vqvae)  # (T, D)
    recon, codes = reconstruct(vqvae, clip)  # (T, D), (T / 4[, Q])
    joints = recover_from_ric(recon, vqvae.config.num_joints)  # (T, J, 3)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for suffix, array in (("recon", recon), ("joints", joints), ("codes", codes)):
        written[suffix] = out / f"{path.stem}_{suffix}.npy"
        np.save(written[suffix], array.numpy())
    error = float(mpjpe_mm(clip[None], recon[None], vqvae.config.num_joints)[0])
    print(f"wrote {', '.join(str(p) for p in written.values())} ({len(clip)} frames, {len(codes)} codes, MPJPE {error:.1f} mm)")
    return written["recon"]


def read_motion(path: Path, vqvae: MotionVQVAE) -> torch.Tensor:
    """A (T, D) float32 feature clip from ``path``; wrong widths, NaNs and clips under one code are refused."""
    array = read_array(path)
    width = vqvae.config.feature_dim
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(f"--motion {path}: expected (T, {width}) motion features (new_joint_vecs), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"--motion {path}: features contain NaN or infinite values")
    if len(array) < vqvae.frames_per_code:
        raise ValueError(f"--motion {path}: {len(array)} frames is shorter than one code ({vqvae.frames_per_code} frames)")
    return torch.from_numpy(array.astype(np.float32))


@torch.no_grad()
def reconstruct(vqvae: MotionVQVAE, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, D) de-normalised features -> reconstruction (T, D) and codes (ceil(T / 4)[, Q]).

    The clip is padded to whole codes by repeating its last frame, and the padding cut off again.
    """
    step, frames = vqvae.frames_per_code, clip.shape[0]
    padded = torch.cat([clip, clip[-1:].expand(-frames % step, -1)])  # (T', D), T' a multiple of 4
    x = vqvae.normalize(rearrange(padded, "t d -> 1 t d"))  # (1, T', D)
    codes = vqvae.encode(x)  # (1, T' / 4[, Q])
    recon = vqvae.denormalize(vqvae.decode(codes))  # (1, T', D)
    return recon[0, :frames], codes[0]
