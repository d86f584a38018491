"""Embedded sound events (determinism, coverage, captions) and the AudioCaps / Clotho loaders."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from unidit.tasks.t2a.data import embedded_clips, embedded_waveforms
from unidit.tasks.t2a.real_data import load_audiocaps, load_clotho
from unidit.tasks.t2a.sounds import KINDS, MAX_SECONDS, MIN_SECONDS, ClipSpec, EventSpec, caption, synthesise

SMALL = dict(num_train=60, num_val=20, test_per_kind=3)


def test_embedded_clips_are_deterministic_and_cached(tmp_path):
    first = embedded_clips("val", seed=3, cache_dir=tmp_path / "a", **SMALL)
    again = embedded_clips("val", seed=3, cache_dir=tmp_path / "a", **SMALL)  # read from the cache
    fresh = embedded_clips("val", seed=3, cache_dir=tmp_path / "b", **SMALL)  # generated anew
    other = embedded_clips("val", seed=4, cache_dir=tmp_path / "b", **SMALL)
    assert list((tmp_path / "a" / "t2a").glob("embedded-val-*.npz"))
    for clips in (again, fresh):
        assert clips.captions == first.captions and clips.specs == first.specs
        assert all(a.tobytes() == b.tobytes() for a, b in zip(clips.waveforms, first.waveforms))  # even -0.0
    assert other.captions != first.captions


def test_embedded_waveforms_api(tmp_path):
    waveforms, captions = embedded_waveforms("val", sample_rate=8000, seed=0, cache_dir=str(tmp_path))
    assert len(waveforms) == len(captions) == 100
    for wave in waveforms:
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert np.abs(wave).max() <= 1.0 and np.abs(wave).max() > 0.05
        assert MIN_SECONDS - 1e-6 <= len(wave) / 8000 <= MAX_SECONDS + 1e-6


def test_splits_cover_kinds_durations_and_arrangements(tmp_path):
    train = embedded_clips("train", cache_dir=tmp_path, **SMALL)
    test = embedded_clips("test", cache_dir=tmp_path, **SMALL)
    assert len(KINDS) >= 8
    assert len(test) == 3 * len(KINDS)
    assert [spec.kinds[0] for spec in test.specs] == [KINDS[i % len(KINDS)] for i in range(len(test))]
    assert {spec.arrangement for spec in train.specs} == {"single", "layered", "sequence"}
    for clips in (train, test):
        for wave, spec in zip(clips.waveforms, clips.specs):
            assert len(wave) == round(spec.seconds * clips.sample_rate)
            assert MIN_SECONDS <= spec.seconds <= MAX_SECONDS


def test_captions_match_their_metadata(tmp_path):
    nouns = {"beep": "beep", "rising chirp": "rising chirp", "falling chirp": "falling chirp",
             "noise burst": "of noise", "click train": "click train", "knock": "knock", "siren": "siren",
             "bell": "bell", "hum": "hum"}
    counts = {2: ("twice", "two"), 3: ("three",)}
    clips = embedded_clips("train", cache_dir=tmp_path, **SMALL)
    for text, spec in zip(clips.captions, clips.specs):
        assert text.strip() and text == text.strip()
        for event in spec.events:
            assert nouns[event.kind] in text, (text, event)
            assert event.pitch in text, (text, event)
            if event.count > 1:
                assert any(word in text for word in counts[event.count]), (text, event)
        if spec.arrangement == "layered":
            assert " while " in text or " over " in text, text
        if spec.arrangement == "sequence":
            assert "then" in text or "followed by" in text, text


def test_events_sound_different():
    """Pitch moves the spectral centroid; loudness sets the peak; kinds differ in envelope."""
    rng = np.random.default_rng(0)

    def centroid(kind: str, pitch: str) -> float:
        rate = "slow" if kind in ("siren", "click train") else ""
        clip = ClipSpec((EventSpec(kind, pitch, "loud", rate=rate),), "single", 2.0, (0.1,))
        audio = synthesise(clip, rng, 16000)
        power = np.abs(np.fft.rfft(audio)) ** 2
        return float((np.fft.rfftfreq(len(audio), 1 / 16000) * power).sum() / power.sum())

    for kind in ("beep", "knock", "bell", "hum", "noise burst", "siren"):
        assert centroid(kind, "high") > 1.5 * centroid(kind, "low"), kind
    quiet = synthesise(ClipSpec((EventSpec("beep", "low", "quiet"),), "single", 2.0, (0.1,)), rng)
    loud = synthesise(ClipSpec((EventSpec("beep", "low", "loud"),), "single", 2.0, (0.1,)), rng)
    assert np.abs(loud).max() > 3 * np.abs(quiet).max()
    assert caption(ClipSpec((EventSpec("knock", "high", "quiet", 2, "fast"),), "single", 2.0, (0.1,))) == \
        "a quiet high knock, twice, quickly"


def test_event_spec_rejects_impossible_attributes():
    with pytest.raises(ValueError, match="count"):
        EventSpec("hum", count=2)
    with pytest.raises(ValueError, match="unknown sound kind"):
        EventSpec("dog")


# ------------------------------------------------------------------ real formats
def _wav(path, seconds: float = 0.5, rate: int = 22050) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), rate)


def test_audiocaps_loader_accepts_the_documented_names(tmp_path):
    _wav(tmp_path / "abc_30.wav")  # <youtube_id>_<start_time> (start written as 30.0 in the CSV)
    _wav(tmp_path / "test" / "Ydef.wav")  # Y<youtube_id>, inside the split folder
    _wav(tmp_path / "ghi.flac", seconds=3.0)  # <youtube_id>, flac
    (tmp_path / "test.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "1,abc,30.0,A dog barks\n2,def,10,Rain falls on a roof\n3,ghi,0,  An engine idles  \n"
    )
    clips = load_audiocaps(tmp_path, "test.csv", split="test", sample_rate=16000, max_seconds=2.0)
    assert clips.captions == ["A dog barks", "Rain falls on a roof", "An engine idles"]
    assert [len(w) for w in clips.waveforms] == [8000, 8000, 32000]  # resampled, cropped to 2 s
    assert all(w.dtype == np.float32 for w in clips.waveforms)


def test_clotho_loader_reads_every_caption(tmp_path):
    _wav(tmp_path / "development" / "a b.wav")
    _wav(tmp_path / "c.wav")
    header = "file_name," + ",".join(f"caption_{i}" for i in range(1, 6))
    rows = ["a b.wav," + ",".join(f"clip a caption {i}" for i in range(1, 6)),
            "c.wav," + ",".join(f"clip c caption {i}" for i in range(1, 6))]
    (tmp_path / "clotho_captions_development.csv").write_text("\n".join([header, *rows]) + "\n")
    clips = load_clotho(tmp_path, "clotho_captions_development.csv", split="development")
    assert len(clips) == 10 and clips.captions[0] == "clip a caption 1" and clips.captions[9] == "clip c caption 5"
    first_only = load_clotho(tmp_path, "clotho_captions_development.csv", split="development", all_captions=False)
    assert first_only.captions == ["clip a caption 1", "clip c caption 1"]


def test_bad_rows_give_clear_errors(tmp_path):
    _wav(tmp_path / "abc_0.wav")
    csv = tmp_path / "rows.csv"
    csv.write_text("audiocap_id,youtube_id,caption\n1,abc,a dog\n")
    with pytest.raises(ValueError, match=r"rows.csv: missing column\(s\) \['start_time'\]"):
        load_audiocaps(tmp_path, csv)
    csv.write_text("audiocap_id,youtube_id,start_time,caption\n1,abc,0,a dog\n2,zzz,0,a cat\n")
    with pytest.raises(FileNotFoundError, match=r"rows.csv, line 3: audio file not found .*zzz_0.wav"):
        load_audiocaps(tmp_path, csv)
    csv.write_text("audiocap_id,youtube_id,start_time,caption\n1,abc,0,   \n")
    with pytest.raises(ValueError, match=r"line 2 \(abc\): empty caption"):
        load_audiocaps(tmp_path, csv)
    (tmp_path / "broken.wav").write_bytes(b"not audio at all")
    (tmp_path / "clotho.csv").write_text("file_name,caption_1\nbroken.wav,a sound\nabc_0.wav,a tone\n")
    with pytest.raises(ValueError, match=r"clotho.csv, line 2: could not decode audio file .*broken.wav"):
        load_clotho(tmp_path, "clotho.csv")
    kept = load_clotho(tmp_path, "clotho.csv", skip_bad_samples=True)
    assert kept.captions == ["a tone"]
    with pytest.raises(FileNotFoundError, match="captions CSV not found"):
        load_clotho(tmp_path, "missing.csv")


def test_training_batches_are_bucketed_by_length():
    """Clips of 2-5 s share padded batches; bucketing keeps each batch's lengths close (less padding)."""
    from types import SimpleNamespace

    import torch
    from unidit.tasks.t2a.datamodule import T2AData

    lengths = [50 + (i * 29) % 76 for i in range(96)]  # 50..125 latent frames, like 2-5 s clips

    def loader(bucket: bool):
        data = T2AData(batch_size=8, bucket_by_length=bucket)
        data.latents = {"train": [torch.zeros(4, n) for n in lengths]}
        data.clips = {"train": SimpleNamespace(captions=[f"clip {i}" for i in range(96)])}
        return data.train_dataloader()

    def padding(batches) -> float:  # padded frames / real frames over the epoch
        real = sum(z.shape[1] for b in batches for z in b["latents"])
        padded = sum(len(b["latents"]) * max(z.shape[1] for z in b["latents"]) for b in batches)
        return padded / real - 1

    bucketed, plain = list(loader(True)), list(loader(False))
    assert len(bucketed) == len(plain) == 12
    assert sorted(c for b in bucketed for c in b["captions"]) == sorted(c for b in plain for c in b["captions"])
    assert padding(bucketed) < 0.05 < 0.2 < padding(plain)
