"""Reading, writing and listing audio files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from unidit.tokenizers.audio_io import list_audio_files, load_audio, write_wav


def _tone(seconds: float, sample_rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_wav_round_trip_is_exact_to_16_bit(tmp_path):
    audio = _tone(0.5, 16000)
    path = write_wav(tmp_path / "tone.wav", audio, 16000)
    loaded = load_audio(path, 16000)
    assert loaded.dtype == np.float32 and loaded.shape == audio.shape
    assert np.abs(loaded - audio).max() <= 1.0 / 2**15 + 1e-6
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_resampling_changes_length_by_the_rate_ratio(tmp_path):
    path = write_wav(tmp_path / "tone.wav", _tone(1.0, 22050), 22050)
    assert load_audio(path, 16000).shape == (16000,)
    assert load_audio(path, 8000).shape == (8000,)
    assert load_audio(path, 44100).shape == (44100,)


def test_stereo_flac_is_mixed_down_to_mono(tmp_path):
    left, right = _tone(0.25, 16000, 300.0), _tone(0.25, 16000, 500.0)
    soundfile.write(tmp_path / "stereo.flac", np.stack([left, right], axis=1), 16000)
    loaded = load_audio(tmp_path / "stereo.flac", 16000)
    assert loaded.shape == left.shape
    np.testing.assert_allclose(loaded, (left + right) / 2, atol=1e-4)


def test_corrupt_file_raises_value_error_naming_it(tmp_path):
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="garbage.wav"):
        load_audio(bad, 16000)


def test_empty_audio_raises_value_error(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros((0, 1), dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="empty.wav.*empty"):
        load_audio(tmp_path / "empty.wav", 16000)


def test_missing_file_and_folder_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav", 16000)
    with pytest.raises(FileNotFoundError, match="missing"):
        list_audio_files(tmp_path / "missing")


def test_list_audio_files_is_recursive_sorted_and_refuses_empty_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "sub" / "b.wav", _tone(0.1, 16000), 16000)
    write_wav(tmp_path / "a.wav", _tone(0.1, 16000), 16000)
    soundfile.write(tmp_path / "c.ogg", _tone(0.1, 16000), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio_files(tmp_path)] == ["a.wav", "c.ogg", "sub/b.wav"]
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        list_audio_files(tmp_path / "none")


def test_write_wav_refuses_multichannel_arrays(tmp_path):
    with pytest.raises(ValueError, match=r"\(T,\)"):
        write_wav(tmp_path / "x.wav", np.zeros((2, 100), dtype=np.float32), 16000)
