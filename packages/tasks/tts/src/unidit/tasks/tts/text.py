"""The TTS text tokenizer: a SentencePiece model (Kudo & Richardson 2018) over the corpus transcripts.

F5-TTS and E2 TTS feed characters to the network; SimpleSpeech 2 argues that
subword tokens work as well. Both are one option here: ``kind="char"`` (every
character a token) or ``kind="bpe"`` (byte-pair merges up to ``vocab_size``).
The model is trained in memory (``SentencePieceTrainer.train(sentence_iterator=...,
model_writer=...)``) on one thread with the input in its given order, so the
same transcripts give the same model byte for byte. Id 0 is padding and id 1
the unknown token; there are no BOS/EOS tokens (the duration predictor and the
denoiser read the whole sequence). ``case_fold`` lower-cases the text through
SentencePiece's ``nmt_nfkc_cf`` normalisation (NFKC + case folding), so
``decode(encode(text)) == normalize(text)``.

A tokenizer is a folder (``tokenizer.model`` + ``tokenizer.json``) that can
sit beside a checkpoint.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import sentencepiece

MODEL_FILE = "tokenizer.model"
CONFIG_FILE = "tokenizer.json"
KINDS = ("char", "bpe")
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class TokenizerConfig:
    """How the tokenizer is trained: ``vocab_size`` is exact for BPE and an upper bound for characters."""

    kind: str = "char"
    vocab_size: int = 256
    case_fold: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"tokenizer kind must be one of {KINDS}, got {self.kind!r}")
        if self.vocab_size < 4:
            raise ValueError(f"vocab_size must be at least 4, got {self.vocab_size}")


class TextTokenizer:
    """Encode transcripts to token ids and back; build with :meth:`train` or :meth:`load`."""

    def __init__(self, model_proto: bytes, config: TokenizerConfig) -> None:
        self.config = config
        self._model_proto = bytes(model_proto)
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=self._model_proto)
        self._space_id = self._processor.piece_to_id("\u2581")

    @classmethod
    def train(cls, texts: Iterable[str], config: TokenizerConfig | None = None, **options) -> "TextTokenizer":
        """Train on ``texts`` (e.g. the train split's transcripts); ``options`` are TokenizerConfig fields."""
        config = config or TokenizerConfig(**options)
        texts = [" ".join(text.split()) for text in texts]
        texts = [text for text in texts if text]
        if not texts:
            raise ValueError("cannot train a text tokenizer on no text: expected at least one non-empty transcript")
        writer = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=writer, model_type=config.kind,
                vocab_size=config.vocab_size, hard_vocab_limit=config.kind == "bpe", character_coverage=1.0,
                pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
                normalization_rule_name="nmt_nfkc_cf" if config.case_fold else "nmt_nfkc",
                num_threads=1, shuffle_input_sentence=False, input_sentence_size=0, minloglevel=2,
            )
        except RuntimeError as error:
            raise ValueError(f"could not train a {config.kind} tokenizer with vocab_size={config.vocab_size} on "
                             f"{len(texts)} transcript(s): {error}") from error
        return cls(writer.getvalue(), config)

    # ------------------------------------------------------------------ files
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``tokenizer.model`` and ``tokenizer.json`` into ``folder``; returns it."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_bytes(self._model_proto)
        (folder / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "TextTokenizer":
        """The tokenizer saved in ``folder`` by :meth:`save`."""
        folder = Path(folder)
        model, config = folder / MODEL_FILE, folder / CONFIG_FILE
        for path in (model, config):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: not found; expected a tokenizer folder written by TextTokenizer.save")
        try:
            settings = TokenizerConfig(**json.loads(config.read_text()))
            return cls(model.read_bytes(), settings)
        except (TypeError, ValueError, RuntimeError) as error:
            raise ValueError(f"{folder}: unreadable tokenizer ({error})") from error

    # ------------------------------------------------------------------ use
    @property
    def vocab_size(self) -> int:
        """Number of ids (padding and unknown included)."""
        return self._processor.get_piece_size()

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID

    def normalize(self, text: str) -> str:
        """``text`` as the model sees it (NFKC, case-folded if configured, whitespace collapsed)."""
        normalized = self._processor.normalize(" ".join(text.split()))  # spaces come back as U+2581
        return normalized.replace("\u2581", " ").strip()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; ValueError if it is empty or none of its characters is known."""
        if not text or not text.strip():
            raise ValueError("cannot tokenize empty text: expected at least one word")
        ids = self._processor.encode(" ".join(text.split()), out_type=int)
        if all(i in (UNK_ID, self._space_id) for i in ids):
            raise ValueError(f"none of the characters of {text!r} is known to the {self.config.kind} tokenizer "
                             f"(vocabulary of {self.vocab_size} pieces trained on the corpus transcripts)")
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (padding ids are dropped)."""
        ids = [int(i) for i in ids if int(i) != PAD_ID]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids {bad[:5]} outside the vocabulary of {self.vocab_size}")
        return self._processor.decode(ids)

    def pieces(self, text: str) -> list[str]:
        """The pieces of ``text`` (for inspection)."""
        return self._processor.encode(" ".join(text.split()), out_type=str)
