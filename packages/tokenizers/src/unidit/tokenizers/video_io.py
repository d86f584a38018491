"""Reading and writing video clips with PyAV (`av`).

`read_video` decodes a file into uint8 frames ``(F, H, W, 3)``, optionally
resampled to a frame rate (nearest frame by timestamp), resized by the shorter
side and centre-cropped, and cut to a number of frames. `write_mp4` writes
frames as H.264 (or MPEG-4 part 2 when libx264 is missing) in yuv420p, atomically.
`check_frame_count` enforces the causal video VAE's ``1 + k * tc`` clip lengths
(LTX-Video, HaCohen et al. 2024: the first frame is encoded alone).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi")


def check_frame_count(num_frames: int, temporal_compression: int) -> None:
    """Raise ValueError unless ``num_frames == 1 + k * temporal_compression`` for some k >= 0."""
    tc = int(temporal_compression)
    if tc < 1:
        raise ValueError(f"temporal_compression must be >= 1, got {temporal_compression}")
    if num_frames < 1 or (num_frames - 1) % tc != 0:
        valid = ", ".join(str(1 + k * tc) for k in range(5))
        raise ValueError(
            f"a causal video VAE with temporal compression {tc} needs 1 + k*{tc} frames "
            f"({valid}, ...), got {num_frames}"
        )


def list_video_files(folder: str | os.PathLike) -> list[Path]:
    """Sorted video files (mp4/webm/mkv/avi) directly inside ``folder``."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"video folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder; expected a folder of {'/'.join(VIDEO_SUFFIXES)} files")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not files:
        raise ValueError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) found in {root}")
    return files


def _decoded_frames(container: av.container.InputContainer) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield ``(seconds, frame)`` for every decodable frame of the first video stream."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    index = 0
    for frame in container.decode(stream):
        seconds = float(frame.time) if frame.time is not None else index / rate
        index += 1
        yield seconds, frame


def _select_frames(
    frames: Iterator[tuple[float, av.VideoFrame]],
    *,
    fps: float | None,
    start_seconds: float,
    num_frames: int | None,
) -> list[np.ndarray]:
    """Pick frames from a timestamped stream: all from ``start_seconds`` on, or the nearest one per 1/fps tick."""
    picked: list[np.ndarray] = []
    if fps is None:
        for seconds, frame in frames:
            if seconds + 1e-6 < start_seconds:
                continue
            picked.append(frame.to_ndarray(format="rgb24"))
            if num_frames is not None and len(picked) >= num_frames:
                break
        return picked

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    previous: tuple[float, av.VideoFrame] | None = None
    gap = None  # source frame spacing in seconds, learnt from the stream
    for seconds, frame in frames:
        if previous is not None:
            gap = seconds - previous[0]
        target = start_seconds + len(picked) / fps
        while target <= seconds:
            use_previous = previous is not None and abs(previous[0] - target) <= abs(seconds - target)
            chosen = previous[1] if use_previous else frame
            picked.append(chosen.to_ndarray(format="rgb24"))
            if num_frames is not None and len(picked) >= num_frames:
                return picked
            target = start_seconds + len(picked) / fps
        previous = (seconds, frame)
    if previous is not None:  # ticks up to half a frame past the last frame still map to it
        last_seconds, last_frame = previous
        while start_seconds + len(picked) / fps <= last_seconds + 0.5 * (gap or 0.0):
            picked.append(last_frame.to_ndarray(format="rgb24"))
            if num_frames is not None and len(picked) >= num_frames:
                break
    return picked


def resize_and_crop(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize ``(F, H, W, 3)`` uint8 frames so they cover ``size`` (shorter side), then centre-crop to it."""
    out_h, out_w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size}")
    _, h, w, _ = frames.shape
    scale = max(out_h / h, out_w / w)
    new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (F, 3, H, W)
    if (new_h, new_w) != (h, w):
        video = F.interpolate(video, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    video = video[:, :, top : top + out_h, left : left + out_w]  # (F, 3, out_h, out_w)
    return video.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def read_video(
    path: str | os.PathLike,
    *,
    num_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    fps: float | None = None,
    start_seconds: float = 0.0,
    max_frames: int | None = None,
) -> np.ndarray:
    """Decode a video file to uint8 frames ``(F, H, W, 3)``.

    ``fps`` resamples by picking, for each tick ``start_seconds + i / fps``, the
    decoded frame nearest in time. ``size`` (an int for a square, or ``(H, W)``)
    resizes by the shorter side and centre-crops. ``num_frames`` keeps the first
    frames and raises ValueError if the clip is shorter; ``max_frames`` stops
    decoding after that many frames without requiring them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    limits = [n for n in (num_frames, max_frames) if n is not None]
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream; expected a video file")
            picked = _select_frames(
                _decoded_frames(container), fps=fps, start_seconds=start_seconds, num_frames=min(limits, default=None)
            )
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode video file {path}: {error}") from error
    if not picked:
        raise ValueError(f"{path} has no decodable frames after {start_seconds:.3f} s")
    if num_frames is not None and len(picked) < num_frames:
        rate = f" at {fps} fps" if fps else ""
        raise ValueError(f"{path} has only {len(picked)} frames{rate} from {start_seconds:.3f} s, expected {num_frames}")
    frames = np.stack(picked)  # (F, H, W, 3)
    return resize_and_crop(frames, size) if size is not None else frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write uint8 frames ``(F, H, W, 3)`` to an mp4 (yuv420p) atomically; odd sizes are edge-padded to even."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"write_mp4({path}): expected frames of shape (F, H, W, 3) with F >= 1, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"write_mp4({path}): expected uint8 frames, got {frames.dtype}")
    if fps <= 0:
        raise ValueError(f"write_mp4({path}): fps must be positive, got {fps}")
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")  # yuv420p needs even sizes
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.height, stream.width = frames.shape[1], frames.shape[2]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "17"} if codec == "libx264" else {"qscale": "2"}
            for image in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
