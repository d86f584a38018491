"""Caption data: embedded scenes, COCO / Karpathy loaders and their errors, BLEU against a hand computation."""

from __future__ import annotations

import json

import pytest
from unidit.tasks.caption.data import read_coco_captions, read_karpathy
from unidit.tasks.caption.metrics import attribute_accuracy, caption_scores, java_available
from unidit.tasks.caption.scenes import generate_scenes, scene_split


def test_scenes_are_deterministic_and_captions_name_the_true_objects(tmp_path):
    first = generate_scenes("train", seed=3, count=12)
    assert first == generate_scenes("train", seed=3, count=12)
    assert first != generate_scenes("val", seed=3, count=12)
    split = scene_split("val", seed=3, sizes={"train": 3, "val": 6, "test": 3}, cache_dir=tmp_path)
    assert len(split) == 6 and split.images().shape == (6, 64, 64, 3)
    objects = dict(zip(split.image_ids, split.objects))
    scores = attribute_accuracy(split.references(), objects)
    assert scores["attribute_accuracy"] == 1.0 and scores["relation_accuracy"] == 1.0
    wrong = {k: ["a purple star to the left of a purple star"] for k in objects}
    assert attribute_accuracy(wrong, objects)["attribute_accuracy"] < 1.0


def _coco(tmp_path, annotations):
    (tmp_path / "a.png").write_bytes(b"not an image")
    path = tmp_path / "captions_val.json"
    path.write_text(json.dumps({"images": [{"id": 7, "file_name": "a.png"}], "annotations": annotations}))
    return path


def test_coco_loader_and_its_errors(tmp_path):
    path = _coco(tmp_path, [{"image_id": 7, "caption": "a dog runs"}, {"image_id": 7, "caption": "a dog"}])
    data = read_coco_captions(path, tmp_path)
    assert data.image_ids == [7] and data.captions == [["a dog runs", "a dog"]]
    with pytest.raises(ValueError, match="a.png: cannot decode"):
        data.image(0)
    with pytest.raises(ValueError, match="captions_val.json.*without captions"):
        read_coco_captions(_coco(tmp_path, []), tmp_path)


def test_karpathy_loader_and_missing_split(tmp_path):
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": [
        {"filepath": "val2014", "filename": "x.jpg", "split": "restval", "cocoid": 1,
         "sentences": [{"raw": "A cat.", "tokens": ["a", "cat"]}]},
        {"filepath": "val2014", "filename": "y.jpg", "split": "train", "cocoid": 2,
         "sentences": [{"raw": "", "tokens": ["two", "cats"]}]}]}))
    train = read_karpathy(path, "train", tmp_path)
    assert train.image_ids == [1, 2] and train.captions == [["A cat."], ["two cats"]]
    assert train.image_paths[0] == tmp_path / "val2014" / "x.jpg"
    with pytest.raises(ValueError, match=r"dataset_coco.json: no image in split 'test'"):
        read_karpathy(path, "test", tmp_path)


def test_coco_toolchain_with_java_and_the_stated_fallback_without():
    """With ``java`` on PATH: the PTB tokenizer and METEOR, as COCO scores; without: Python tokens, no METEOR."""
    predictions = {1: ["A cat sat on the mat."], 2: ["a small red square"]}
    references = {1: ["The cat sat on the mat", "a cat on a mat"], 2: ["a small red square", "one red square"]}
    scores = caption_scores(predictions, references)
    if java_available():
        assert scores["tokenizer"] == "ptb"
        assert 0.5 < scores["METEOR"] <= 1.0  # two captions that each equal a reference, up to case and "."
    else:
        assert scores["tokenizer"] == "python" and "METEOR" not in scores
    assert scores["BLEU-1"] == pytest.approx(1.0)  # either tokenizer drops the case and the full stop


def test_bleu_matches_a_hand_computation():
    # candidate "the cat sat on mat" vs reference "the cat sat on the mat":
    # 1-gram precision 5/5, 2-gram 3/4; brevity penalty exp(1 - 6/5).
    scores = caption_scores({1: ["the cat sat on mat"]}, {1: ["the cat sat on the mat"]}, use_java=False)
    import math

    bp = math.exp(1 - 6 / 5)
    assert scores["BLEU-1"] == pytest.approx(bp * 1.0, rel=1e-4)
    assert scores["BLEU-2"] == pytest.approx(bp * math.sqrt(1.0 * 3 / 4), rel=1e-4)
    assert scores["tokenizer"] == "python" and "CIDEr-D" in scores and "ROUGE-L" in scores
