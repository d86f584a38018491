"""The SentencePiece text tokenizer: round trips, save/load, determinism, and its errors."""

from __future__ import annotations

import pytest
from unidit.tasks.tts.sentences import sentences
from unidit.tasks.tts.text import PAD_ID, UNK_ID, TextTokenizer, TokenizerConfig

TRAIN = sentences(400, seed=0)
HELD_OUT = [text for text in sentences(460, seed=1) if text not in set(TRAIN)][:40]


@pytest.fixture(scope="module")
def char_tokenizer() -> TextTokenizer:
    return TextTokenizer.train(TRAIN, kind="char", vocab_size=128)


@pytest.mark.parametrize("kind, vocab_size", [("char", 128), ("bpe", 120)])
def test_round_trip_on_unseen_sentences(kind, vocab_size):
    tokenizer = TextTokenizer.train(TRAIN, kind=kind, vocab_size=vocab_size)
    for text in HELD_OUT:
        ids = tokenizer.encode(text)
        assert ids and PAD_ID not in ids and UNK_ID not in ids
        assert all(0 <= i < tokenizer.vocab_size for i in ids)
        assert tokenizer.decode(ids) == tokenizer.normalize(text) == text.lower()
        assert tokenizer.decode(ids + [tokenizer.pad_id] * 3) == text.lower()  # padding is dropped
    if kind == "bpe":
        assert tokenizer.vocab_size == vocab_size


def test_char_vocabulary_is_the_characters_and_bpe_is_shorter(char_tokenizer):
    characters = {c for text in TRAIN for c in text.lower() if c != " "}
    assert char_tokenizer.vocab_size == len(characters) + 3  # + padding, unknown and the word boundary
    text = HELD_OUT[0]
    # one id per character, spaces as the word-boundary piece, plus one boundary before the first word
    assert len(char_tokenizer.encode(text)) == len(text) + 1
    bpe = TextTokenizer.train(TRAIN, kind="bpe", vocab_size=200)
    assert len(bpe.encode(text)) < len(text) / 2


def test_case_kept_when_asked():
    tokenizer = TextTokenizer.train(TRAIN, kind="char", case_fold=False)
    assert tokenizer.decode(tokenizer.encode("Anna found the coat.")) == "Anna found the coat."


def test_save_load_and_determinism(char_tokenizer, tmp_path):
    folder = char_tokenizer.save(tmp_path / "tokenizer")
    loaded = TextTokenizer.load(folder)
    assert loaded.config == char_tokenizer.config and loaded.vocab_size == char_tokenizer.vocab_size
    assert [loaded.encode(t) for t in HELD_OUT] == [char_tokenizer.encode(t) for t in HELD_OUT]
    again = TextTokenizer.train(TRAIN, kind="char", vocab_size=128).save(tmp_path / "again")
    assert (again / "tokenizer.model").read_bytes() == (folder / "tokenizer.model").read_bytes()


def test_errors(char_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="empty text"):
        char_tokenizer.encode("   ")
    with pytest.raises(ValueError, match="none of the characters of '# @ §' is known"):
        char_tokenizer.encode("# @ §")
    assert UNK_ID in char_tokenizer.encode("the § coat")  # partly unknown text keeps its known characters
    with pytest.raises(ValueError, match="outside the vocabulary"):
        char_tokenizer.decode([char_tokenizer.vocab_size])
    with pytest.raises(ValueError, match="no text"):
        TextTokenizer.train(["", "  "])
    with pytest.raises(ValueError, match="kind must be one of"):
        TokenizerConfig(kind="word")
    with pytest.raises(FileNotFoundError, match="tokenizer.model: not found"):
        TextTokenizer.load(tmp_path)
