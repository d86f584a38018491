"""The HumanML3D / KIT-ML folder loader on folders written by the tests and on the real sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from unidit.tasks.motion.data import MotionWindows, load_split

SAMPLE = Path(__file__).parent / "data" / "humanml3d"


def write_folder(root: Path, dim: int = 263, frames: dict[str, int] | None = None, texts: dict[str, str] | None = None,
                 listed: tuple[str, ...] = ("000001", "000002")) -> Path:
    """A HumanML3D-layout folder with clips of ``frames[name]`` frames (value = frame index + clip number)."""
    frames = frames or {"000001": 100, "000002": 60, "M000001": 100}
    for sub in ("new_joint_vecs", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i, (name, count) in enumerate(frames.items()):
        features = np.arange(count, dtype=np.float32)[:, None] + np.zeros((1, dim), np.float32) + 1000 * i
        np.save(root / "new_joint_vecs" / f"{name}.npy", features)
        text = (texts or {}).get(name, "a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0")
        (root / "texts" / f"{name}.txt").write_text(text + "\n")
    np.save(root / "Mean.npy", np.zeros(dim, np.float32))
    np.save(root / "Std.npy", np.ones(dim, np.float32))
    (root / "train.txt").write_text("\n".join(listed) + "\n")
    return root


def test_reads_the_real_sample():
    split = load_split(SAMPLE, "train")
    assert [c.name for c in split.clips] == ["012314"]
    assert split.clips[0].features.shape == (170, 263)
    assert split.skipped["missing mirrored copy"] == 1
    assert split.clips[0].captions[0].tokens[:2] == ["a/DET", "person/NOUN"]


def test_mirrored_copies_and_timed_captions(tmp_path):
    texts = {"000002": "a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\n"
                       "then jumps.#then/ADV jump/VERB#1.0#3.0"}
    root = write_folder(tmp_path, frames={"000001": 100, "000002": 80, "M000001": 100}, texts=texts)
    split = load_split(root, "train")
    by_name = {c.name: c for c in split.clips}
    assert set(by_name) == {"000001", "M000001", "000002", "000002_1"}
    cut = by_name["000002_1"].features  # frames [1.0 s * 20, 3.0 s * 20)
    assert cut.shape == (40, 263) and cut[0, 0] == 1000 + 20 and cut[-1, 0] == 1000 + 59
    assert by_name["000002_1"].captions[0].text == "then jumps."
    assert by_name["M000001"].features[0, 0] == 2000  # the mirrored file, not the original
    assert len(by_name["000002"].captions) == 1


def test_short_clips_are_counted_and_long_ones_cut(tmp_path):
    root = write_folder(tmp_path, frames={"000001": 300, "000002": 20})
    split = load_split(root, "train", min_frames=40, max_frames=196)
    assert [c.name for c in split.clips] == ["000001"]
    assert split.skipped == {"missing mirrored copy": 2, "too short": 1, "bad file": 0}
    assert split.clips[0].features.shape == (196, 263)


def test_kit_width(tmp_path):
    root = write_folder(tmp_path, dim=251, frames={"000001": 50, "000002": 50})
    assert load_split(root, "train", kind="kit").clips[0].features.shape == (50, 251)
    with pytest.raises(ValueError, match=r"Mean\.npy.*\(263,\)"):
        load_split(root, "train", kind="humanml3d")


def test_missing_folder_and_missing_parts_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_split(tmp_path / "nowhere")
    root = write_folder(tmp_path / "a")
    (root / "Std.npy").unlink()
    with pytest.raises(FileNotFoundError, match="missing Std.npy"):
        load_split(root)


def test_wrong_width_and_corrupt_files_name_the_file(tmp_path):
    root = write_folder(tmp_path / "wide")
    np.save(root / "new_joint_vecs" / "000002.npy", np.zeros((60, 250), np.float32))
    with pytest.raises(ValueError, match=r"000002\.npy: expected features of shape \(T, 263\)"):
        load_split(root)
    root = write_folder(tmp_path / "corrupt")
    (root / "new_joint_vecs" / "000001.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match=r"000001\.npy"):
        load_split(root)
    root = write_folder(tmp_path / "nan")
    bad = np.zeros((60, 263), np.float32)
    bad[5, 3] = np.nan
    np.save(root / "new_joint_vecs" / "000002.npy", bad)
    with pytest.raises(ValueError, match=r"000002\.npy: features contain NaN"):
        load_split(root)


def test_bad_caption_line_names_file_and_line(tmp_path):
    root = write_folder(tmp_path, texts={"000002": "a person walks.#a/DET#0.0#0.0\nno hashes here"})
    with pytest.raises(ValueError, match=r"000002\.txt:2: expected 'caption#"):
        load_split(root)


def test_bad_files_are_counted_and_skipped_when_asked(tmp_path, capsys):
    root = write_folder(tmp_path, frames={"000001": 100, "000002": 60, "000003": 80, "M000001": 100},
                        texts={"000003": "a person jumps.#a/DET#0.0"}, listed=("000001", "000002", "000003"))
    bad = np.zeros((60, 263), np.float32)
    bad[7, 2] = np.inf
    np.save(root / "new_joint_vecs" / "000002.npy", bad)
    with pytest.raises(ValueError, match=r"000002\.npy: features contain NaN or infinite"):
        load_split(root)
    split = load_split(root, skip_bad_samples=True)
    assert sorted(c.name for c in split.clips) == ["000001", "M000001"]
    assert split.skipped["bad file"] == 2
    printed = capsys.readouterr().out
    assert "skipped 2 bad sample(s) of 4" in printed and "000003.txt:1: expected 'caption#" in printed


def test_windows_are_normalised_seeded_crops(tmp_path):
    root = write_folder(tmp_path, frames={"000001": 100, "000002": 60, "M000001": 100})
    split = load_split(root, "train")
    windows = MotionWindows(split, window=48, crops_per_clip=2, seed=1)
    assert len(windows) == 2 * len(split.clips)
    first = windows[0]
    assert first.shape == (48, 263) and np.array_equal(first.numpy(), windows[0].numpy())
    assert np.all(np.diff(first[:, 0].numpy()) == 1.0)  # a contiguous crop
    with pytest.raises(ValueError, match="at least 200 frames"):
        MotionWindows(split, window=200)
