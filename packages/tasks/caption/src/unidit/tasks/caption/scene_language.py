"""The words of the embedded scenes: captions in varied wording, and the parser that reads them back.

Captions are built from object phrases (``a small red circle``, ``the blue
square``) joined by relation phrases (``to the left of``, ``above``, ``under`` …)
or by ``and``. :func:`parse_caption` reads any caption (a generated one too) into
the object mentions and the relations between consecutive mentions, which is
what attribute accuracy (:mod:`unidit.tasks.caption.metrics`) scores against
the scene's true objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from unidit.tasks.caption.scene_draw import COLOURS, MIN_OFFSET, SHAPES, SIZES, SceneObject

RELATION_WORDS = {
    "left": ("to the left of", "left of", "on the left of"),
    "right": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over", "on top of"),
    "below": ("below", "under", "beneath"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}
TEMPLATES_1 = ("{a}", "there is {a}", "{a} on a grey background", "a picture of {a}", "an image showing {a}")
TEMPLATES_2 = ("{a} {rel} {b}", "there is {a} {rel} {b}", "{a} is {rel} {b}", "a picture of {a} {rel} {b}",
               "{a} and {b}")
TEMPLATES_3 = ("{a} {rel} {b}, and {c} {rel2} {b_again}", "{a} {rel} {b} and {c} {rel2} {b_again}",
               "there is {a} {rel} {b}, with {c} {rel2} {b_again}", "{a}, {b} and {c}")


def relation(a: SceneObject, b: SceneObject) -> str:
    """The relation of ``a`` to ``b`` along the axis where they are further apart (y grows downwards)."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "above" if dy < 0 else "below"


def relation_holds(a: SceneObject, b: SceneObject, name: str) -> bool:
    """``a`` is ``name`` of ``b``: at least :data:`MIN_OFFSET` pixels along that axis (the other axis is free)."""
    offset = {"left": b.x - a.x, "right": a.x - b.x, "above": b.y - a.y, "below": a.y - b.y}[name]
    return offset >= MIN_OFFSET


def _phrase(obj: SceneObject, rng: np.random.Generator, article: str = "a", with_size: bool = True) -> str:
    words = [str(rng.choice(SIZE_WORDS[obj.size]))] if with_size else []
    words += [obj.colour, obj.shape]
    if article == "a" and words[0][0] in "aeiou":
        article = "an"
    return " ".join([article, *words])


def caption_scene(objects: list[SceneObject], rng: np.random.Generator) -> str:
    """One caption of the scene; the template, size and relation wordings are drawn from ``rng``."""
    with_size = bool(rng.random() < 0.8)
    phrases = [_phrase(o, rng, with_size=with_size) for o in objects]
    if len(objects) == 1:
        return str(rng.choice(TEMPLATES_1)).format(a=phrases[0])
    rel = str(rng.choice(RELATION_WORDS[relation(objects[0], objects[1])]))
    if len(objects) == 2:
        return str(rng.choice(TEMPLATES_2)).format(a=phrases[0], rel=rel, b=phrases[1])
    rel2 = str(rng.choice(RELATION_WORDS[relation(objects[2], objects[1])]))
    again = _phrase(objects[1], rng, article="the", with_size=False)
    return str(rng.choice(TEMPLATES_3)).format(a=phrases[0], rel=rel, b=phrases[1], c=phrases[2], rel2=rel2,
                                               b_again=again)


@dataclass(frozen=True)
class Mention:
    """An object phrase in a caption: its shape and, when the caption says them, colour and size."""

    shape: str
    colour: str | None
    size: str | None


_SIZE_OF = {word: size for size, words in SIZE_WORDS.items() for word in words}
_RELATION_OF = {phrase: name for name, phrases in RELATION_WORDS.items() for phrase in phrases}
_SHAPE_OF = {**{s: s for s in SHAPES}, **{s + "s": s for s in SHAPES}}
_WORD = re.compile(r"[a-z]+")


def parse_caption(text: str) -> tuple[list[Mention], list[tuple[int, str, int]]]:
    """Object mentions and relations ``(i, name, j)`` meaning mention ``i`` is ``name`` of mention ``j``.

    A mention ends at a shape word and takes the size and colour words just before
    it; a relation is the first relation phrase between two consecutive mentions.
    Words the scenes never use are ignored, so free-form captions parse too.
    """
    words = _WORD.findall(text.lower())
    mentions: list[Mention] = []
    spans: list[tuple[int, int]] = []
    start = 0
    for k, word in enumerate(words):
        if word in _SHAPE_OF:
            colour = size = None
            for prev in reversed(words[start:k]):
                if prev in COLOURS and colour is None:
                    colour = prev
                elif prev in _SIZE_OF and size is None:
                    size = _SIZE_OF[prev]
                elif prev not in COLOURS and prev not in _SIZE_OF:
                    break
            mentions.append(Mention(_SHAPE_OF[word], colour, size))
            spans.append((start, k))
            start = k + 1
    relations = []
    for i in range(1, len(mentions)):
        between = " " + " ".join(words[spans[i - 1][1] + 1 : spans[i][1]]) + " "  # after the last shape, up to this one
        found = [(between.find(f" {p} "), name) for p, name in _RELATION_OF.items() if f" {p} " in between]
        if found:
            relations.append((i - 1, min(found)[1], i))
    return mentions, relations
