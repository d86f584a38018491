"""A seeded generator of short English sentences for the embedded speech corpus.

Sentences are filled from templates and word lists written for this corpus.
They are built so that a transcript is already in the normalised form of
LJSpeech's third column (Ito & Johnson 2017): ordinary words, no digits,
abbreviations or symbols (counts are spelled out), one capital at the start
and a final ``.``, ``?`` or ``!``. With 4 to 9 words they last 1.2 to 3.3 s
at the speaking rates of :data:`unidit.tasks.tts.espeak.VOICES`. Every word is a common one that the
pocketsphinx en-us dictionary (CMUdict) knows, so recognition errors measure
the speech rather than out-of-vocabulary words.
"""

from __future__ import annotations

import numpy as np

_WORDS: dict[str, tuple[str, ...]] = {
    "name": ("anna", "peter", "maria", "james", "laura", "daniel", "emma", "robert", "sarah", "thomas", "helen",
             "george", "alice", "henry", "clara", "martin"),
    "adj": ("old", "small", "bright", "quiet", "heavy", "green", "yellow", "cold", "warm", "empty", "broken",
            "clean", "dark", "famous", "gentle", "narrow", "wooden", "golden", "simple", "strange"),
    "noun": ("garden", "window", "letter", "river", "basket", "table", "mountain", "village", "picture", "bottle",
             "bridge", "kitchen", "market", "blanket", "ladder", "doctor", "teacher", "horse", "forest", "station",
             "lamp", "boat", "chair", "island", "engine", "pocket", "castle", "coat", "tower", "road"),
    "plural": ("apples", "candles", "stones", "flowers", "books", "birds", "coins", "shoes", "boxes", "cups",
               "keys", "maps", "ships", "songs", "trees", "clouds"),
    "past": ("found", "painted", "carried", "opened", "cleaned", "watched", "moved", "visited", "described",
             "repaired", "covered", "followed", "remembered", "noticed", "measured", "closed"),
    "verb": ("find", "paint", "carry", "open", "clean", "watch", "move", "visit", "describe", "repair", "cover",
             "follow", "remember", "notice", "measure", "close"),
    "prep": ("near", "behind", "under", "beside", "across", "inside", "above", "around"),
    "time": ("this morning", "last night", "on sunday", "every evening", "after dinner", "before noon",
             "in the winter", "yesterday", "at dawn", "later that day"),
    "count": ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty"),
    "manner": ("slowly", "quietly", "carefully", "quickly", "gently", "happily", "suddenly", "easily"),
}

# Each template is a tuple of slots and literal words; "{slot}" draws from _WORDS.
_TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("the", "{adj}", "{noun}", "is", "{prep}", "the", "{noun}"),
    ("{name}", "{past}", "the", "{adj}", "{noun}", "{time}"),
    ("we", "{past}", "{count}", "{plural}", "{prep}", "the", "{noun}"),
    ("please", "{verb}", "the", "{noun}", "{manner}"),
    ("did", "{name}", "{verb}", "the", "{adj}", "{noun}", "?"),
    ("there", "were", "{count}", "{adj}", "{plural}", "in", "the", "{noun}"),
    ("{name}", "and", "{name}", "{past}", "a", "{adj}", "{noun}"),
    ("the", "{noun}", "{prep}", "the", "{noun}", "was", "{adj}"),
    ("she", "{manner}", "{past}", "the", "{noun}", "{time}"),
    ("how", "many", "{plural}", "did", "you", "{verb}", "{time}", "?"),
    ("they", "will", "{verb}", "the", "{adj}", "{noun}", "{prep}", "the", "{noun}"),
    ("what", "a", "{adj}", "{noun}", "!"),
    ("my", "{noun}", "has", "{count}", "{adj}", "{plural}"),
    ("he", "{past}", "the", "{noun}", "and", "{past}", "the", "{noun}"),
)


def sentence(rng: np.random.Generator) -> str:
    """One sentence drawn with ``rng``: a template filled from the word lists, capitalised, punctuated."""
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    words = []
    for part in template:
        if part.startswith("{"):
            choices = _WORDS[part[1:-1]]
            words.append(choices[rng.integers(len(choices))])
        else:
            words.append(part)
    end = "."
    if words[-1] in ("?", "!"):
        end = words.pop()
    text = " ".join(words)
    return text[0].upper() + text[1:] + end


def sentences(count: int, seed: int) -> list[str]:
    """``count`` distinct sentences, the same for the same ``seed`` (in the order drawn)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E17]))
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < count:
        seen.setdefault(sentence(rng), None)
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ValueError(f"could not draw {count} distinct sentences (got {len(seen)})")
    return list(seen)


def vocabulary() -> set[str]:
    """Every word a generated sentence can contain (lower case), for recogniser checks."""
    words = {word for choices in _WORDS.values() for phrase in choices for word in phrase.split()}
    words |= {part for template in _TEMPLATES for part in template if not part.startswith("{") and part.isalpha()}
    return words
