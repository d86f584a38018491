"""Caption metrics: BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR with Java), and attribute accuracy on scenes.

The n-gram metrics are ``pycocoevalcap``'s scorers (the COCO caption evaluation
code: BLEU, Papineni et al. 2002; ROUGE-L, Lin 2004; CIDEr-D, Vedantam et al. 2015,
with its Gaussian length penalty and clipped counts), on
``{image_id: [captions]}`` dicts. Text is tokenised by the Stanford PTB tokenizer
when ``java`` is on PATH, as COCO does; otherwise by :func:`simple_tokenize`
(lower-case, words and numbers only: every punctuation mark PTB's list removes
is dropped). METEOR also needs Java and is left out without it. Install a JRE
with e.g. ``sudo apt-get install default-jre-headless``.

Attribute accuracy parses captions with :func:`unidit.tasks.caption.scene_language.parse_caption`
and checks each mentioned shape, colour, size and relation against the scene's true objects.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence

from unidit.tasks.caption.scene_draw import SceneObject
from unidit.tasks.caption.scene_language import Mention, parse_caption, relation_holds

_WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def java_available() -> bool:
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    """PTB-like tokenisation without Java: lower-cased words joined by single spaces, punctuation removed."""
    return " ".join(_WORDS.findall(text.lower()))


def _check(predictions: Mapping, references: Mapping) -> None:
    if not predictions:
        raise ValueError("no predictions given; expected {image_id: [caption]} with at least one image")
    missing = [k for k in predictions if not references.get(k)]
    if missing:
        raise ValueError(f"{len(missing)} predicted image(s) without reference captions (first id {missing[0]})")
    several = [k for k, v in predictions.items() if len(v) != 1]
    if several:
        raise ValueError(f"image {several[0]} has {len(predictions[several[0]])} predictions; expected exactly one")


def tokenize(captions: Mapping[object, Sequence[str]], use_java: bool | None = None) -> dict:
    """``{id: [tokenised caption]}``: PTB (Java) when ``use_java`` (default: whether ``java`` is on PATH)."""
    if use_java if use_java is not None else java_available():
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions.items()})
    return {k: [simple_tokenize(c) for c in v] for k, v in captions.items()}


def caption_scores(predictions: Mapping[object, Sequence[str]], references: Mapping[object, Sequence[str]],
                   use_java: bool | None = None) -> dict[str, float]:
    """Corpus BLEU-1..4, ROUGE-L, CIDEr-D (+ METEOR with Java) of one prediction per image.

    ``use_java`` None = use Java when it is on PATH; the result says which tokenizer ran.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    _check(predictions, references)
    java = java_available() if use_java is None else use_java
    keys = list(predictions)
    res = tokenize({k: predictions[k] for k in keys}, java)
    gts = tokenize({k: references[k] for k in keys}, java)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    if java:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        scores["METEOR"] = float(meteor.compute_score(gts, res)[0])
        del meteor
    scores["tokenizer"] = "ptb" if java else "python"
    return scores


def _objects(items: Sequence) -> list[SceneObject]:
    return [o if isinstance(o, SceneObject) else SceneObject(**o) for o in items]


def _matches(mention: Mention, objects: list[SceneObject]) -> list[SceneObject]:
    return [o for o in objects if o.shape == mention.shape and mention.colour in (None, o.colour)
            and mention.size in (None, o.size)]


def score_caption(text: str, objects: Sequence) -> dict[str, list[int]]:
    """Hits and counts per attribute for one caption: ``{name: [correct, mentioned]}``, plus object recall.

    A shape is right if the scene has one; a colour if an object of that shape (any
    object, when the shape is wrong) has it; a size if an object of that shape and
    colour has it; a relation if two distinct objects matching both phrases stand
    in it (:func:`relation_holds`). ``objects_found`` counts true objects that some
    mention fully matches.
    """
    scene = _objects(objects)
    mentions, relations = parse_caption(text)
    tally = {name: [0, 0] for name in ("shape", "colour", "size", "relation")}
    for m in mentions:
        same_shape = [o for o in scene if o.shape == m.shape]
        tally["shape"][0] += bool(same_shape)
        tally["shape"][1] += 1
        pool = same_shape or scene
        if m.colour is not None:
            tally["colour"][0] += any(o.colour == m.colour for o in pool)
            tally["colour"][1] += 1
            pool = [o for o in pool if o.colour == m.colour] or pool
        if m.size is not None:
            tally["size"][0] += any(o.size == m.size for o in pool)
            tally["size"][1] += 1
    for i, name, j in relations:
        pairs = ((a, b) for a in _matches(mentions[i], scene) for b in _matches(mentions[j], scene) if a is not b)
        tally["relation"][0] += any(relation_holds(a, b, name) for a, b in pairs)
        tally["relation"][1] += 1
    found = sum(any(o in _matches(m, scene) for m in mentions) for o in scene)
    tally["objects_found"] = [found, len(scene)]
    return tally


def attribute_accuracy(predictions: Mapping[object, Sequence[str]], objects: Mapping[object, Sequence]
                       ) -> dict[str, float]:
    """Attribute accuracy over every caption of ``predictions`` against each image's true objects.

    Returns the accuracy per attribute (correct / mentioned; NaN-free: 0 mentions give 0),
    ``attribute_accuracy`` (all attribute mentions pooled) and ``object_recall``
    (true objects fully described / all true objects).
    """
    if not predictions:
        raise ValueError("no predictions given; expected {image_id: [caption]}")
    total = {name: [0, 0] for name in ("shape", "colour", "size", "relation", "objects_found")}
    for key, texts in predictions.items():
        if key not in objects:
            raise ValueError(f"image {key}: no true objects given; attribute accuracy needs the scene labels")
        for text in texts:
            for name, (hit, count) in score_caption(text, objects[key]).items():
                total[name][0] += hit
                total[name][1] += count
    out = {f"{name}_accuracy": hit / count if count else 0.0 for name, (hit, count) in total.items()
           if name != "objects_found"}
    pooled = [sum(total[n][i] for n in ("shape", "colour", "size", "relation")) for i in (0, 1)]
    out["attribute_accuracy"] = pooled[0] / pooled[1] if pooled[1] else 0.0
    out["object_recall"] = total["objects_found"][0] / max(1, total["objects_found"][1])
    return out
