"""``unidit fit|eval|sample text-latent``.

``fit`` fits the text-latent tokenizer (LaDiC's split BERT,
:mod:`unidit.tokenizers.text_latent`) on the embedded scene captions, once per
decoder variant, and writes ``<out>/version_N/<variant>/`` (config.json +
model.safetensors: the head and latent statistics; the BERT is referenced by
id/path) and ``metrics.json`` with the round trip on the held-out test captions.
``eval`` prints the round trip of saved tokenizers (a variant folder or a run
folder holding several) and writes metrics.json; ``sample`` round-trips given captions.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Optional

from jsonargparse import ArgumentParser
from unidit.apps.arguments import output_folder
from unidit.tasks.caption.data import CaptionSet, read_coco_captions
from unidit.tasks.caption.scenes import scene_split
from unidit.tokenizers.text_latent import (
    DecoderTraining, TextLatentTokenizer, caption_vocabulary, fit_variants, roundtrip_metrics,
)
from unidit.training.export import write_file_atomically
from unidit.training.model_cache import cache_root
from unidit.training.step_timer import cpu_model

FIT_CONFIG = Path(__file__).parent / "fit.yaml"


@dataclass
class TextLatentFit:
    """What ``unidit fit text-latent`` trains.

    Attributes:
        bert: Hugging Face BERT id or local directory; None = the bundled MiniLM-L6.
        split_layer: BERT layers that encode; the rest decode.
        length: token positions per caption.
        vocabulary: ``train`` = the head covers the word pieces of the training captions; ``full`` = all.
        train_upper: also train the upper layers of the ``upper`` variant.
        decoders: decoder variants to train (``upper``, ``head``).
        training: head training options.
        max_captions: distinct training captions used (a seeded subset); None = all of them.
        cache_latents: keep the lower-layer latents of the training captions on disk for the next run.
        seed: seed of the embedded scenes.
        cache_dir: cache of the embedded scenes and latents.
        out: runs go to ``<out>/version_N``.
    """

    bert: Optional[str] = None
    split_layer: int = 3
    length: int = 24
    vocabulary: Literal["train", "full"] = "train"
    train_upper: bool = False
    decoders: list[Literal["upper", "head"]] = field(default_factory=lambda: ["upper", "head"])
    training: DecoderTraining = field(default_factory=DecoderTraining)
    max_captions: Optional[int] = 2000
    cache_latents: bool = True
    seed: int = 0
    cache_dir: Optional[str] = None
    out: str = "runs/text_latent"


def fit(argv: list[str]) -> Path:
    return fit_config(parse_fit(argv))


def parse_fit(argv: list[str]) -> TextLatentFit:
    """``fit.yaml`` overridden by ``argv`` as a :class:`TextLatentFit`."""
    parser = ArgumentParser(prog="unidit fit text-latent", exit_on_error=False, default_config_files=[str(FIT_CONFIG)],
                            description="Train the text-latent tokenizer's decoder on the embedded scene captions.")
    parser.add_class_arguments(TextLatentFit, as_group=False)
    parser.add_argument("--config", action="config")
    return TextLatentFit(**{k: v for k, v in parser.instantiate_classes(parser.parse_args(argv)).items()
                            if k in TextLatentFit.__dataclass_fields__})


def fit_config(config: TextLatentFit, sizes: dict[str, int] | None = None) -> Path:
    """Train every variant of ``config.decoders``; ``sizes`` shrinks the embedded splits (tests)."""
    if not config.decoders:
        raise ValueError("--decoders: empty; expected one or more of upper, head")
    begin = time.perf_counter()
    run = _next_version(Path(config.out))
    train = scene_split("train", seed=config.seed, sizes=sizes, cache_dir=config.cache_dir).all_captions()
    test = scene_split("test", seed=config.seed, sizes=sizes, cache_dir=config.cache_dir)
    vocab = caption_vocabulary(config.bert, train) if config.vocabulary == "train" else None
    latent_cache = cache_root(config.cache_dir) / "text_latent" if config.cache_latents else None
    fitted = fit_variants(train, config.decoders, bert=config.bert, split_layer=config.split_layer,
                          length=config.length, train_upper=config.train_upper, vocab_ids=vocab,
                          training=config.training, max_captions=config.max_captions, cache_dir=latent_cache)
    print(f"latents of {fitted.captions} distinct training captions in {fitted.latent_seconds:.1f} s")
    results = {}
    for decoder, variant in fitted.variants.items():
        variant.tokenizer.save_pretrained(str(run / decoder))
        results[decoder] = {**roundtrip_metrics(variant.tokenizer, test.all_captions()),
                            "first_loss": variant.losses[0], "last_loss": variant.losses[-1],
                            "train_seconds": variant.seconds, "raw_std_mean": fitted.statistics["raw_std_mean"]}
        print(f"trained the {decoder} decoder in {variant.seconds:.1f} s "
              f"(loss {variant.losses[0]:.3f} -> {variant.losses[-1]:.3f}), saved to {run / decoder}")
    config_dict = asdict(config)
    metrics = {"sets": {"embedded test": results}, "config": config_dict, "train_captions": len(train),
               "distinct_train_captions_used": fitted.captions, "latent_seconds": fitted.latent_seconds,
               "fit_seconds": time.perf_counter() - begin, "cpu": cpu_model()}
    _report(metrics, run)
    return run


def evaluate(argv: list[str]) -> dict:
    parser = ArgumentParser(prog="unidit eval text-latent", exit_on_error=False,
                            description="Print the round trip of saved text-latent tokenizers.")
    parser.add_argument("--ckpt", required=True, help="a saved tokenizer folder, or a run folder holding several")
    parser.add_argument("--captions", type=Optional[str], default=None,
                        help="a COCO captions_*.json to round-trip instead of the embedded test split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded scenes")
    parser.add_argument("--cache_dir", type=Optional[str], default=None, help="cache of the embedded scenes")
    parser.add_argument("--out", type=Optional[str], default=None, help="write metrics.json here (default: --ckpt)")
    args = parser.parse_args(argv)
    tokenizers = load_tokenizers(args.ckpt)
    if args.captions:
        name, captions = Path(args.captions).name, read_coco_captions(args.captions, Path(args.captions).parent)
    else:
        name, captions = "embedded test", scene_split("test", seed=args.seed, cache_dir=args.cache_dir)
    return evaluate_tokenizers(tokenizers, name, captions, Path(args.out or args.ckpt))


def evaluate_tokenizers(tokenizers: dict[str, TextLatentTokenizer], name: str, captions: CaptionSet, out: Path) -> dict:
    results = {variant: roundtrip_metrics(tok, captions.all_captions()) for variant, tok in tokenizers.items()}
    metrics = {"sets": {name: results}, "cpu": cpu_model()}
    _report(metrics, out)
    return metrics


def sample(argv: list[str]) -> list[str]:
    parser = ArgumentParser(prog="unidit sample text-latent", exit_on_error=False,
                            description="Encode captions to latents and decode them back.")
    parser.add_argument("--ckpt", required=True, help="a saved tokenizer folder")
    parser.add_argument("--caption", type=list[str], required=True, help="one or more captions")
    args = parser.parse_args(argv)
    tokenizer = next(iter(load_tokenizers(args.ckpt).values()))
    decoded = tokenizer.decode(tokenizer.encode(args.caption))
    for text, back in zip(args.caption, decoded):
        print(f"{text!r} -> {back!r}")
    return decoded


def load_tokenizers(path: str | Path) -> dict[str, TextLatentTokenizer]:
    """``{variant: tokenizer}`` from a tokenizer folder or from a run folder with one subfolder per variant."""
    target = Path(path)
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: not found; expected a text-latent tokenizer folder or a run folder")
    folders = [target] if (target / "config.json").is_file() else sorted(
        p for p in target.iterdir() if (p / "config.json").is_file())
    if not folders:
        raise FileNotFoundError(f"{target}: no config.json here or in a subfolder; expected a saved text-latent tokenizer")
    loaded = {}
    for folder in folders:
        tokenizer = TextLatentTokenizer.from_pretrained(str(folder))
        loaded[tokenizer.decoder if tokenizer.decoder not in loaded else folder.name] = tokenizer
    return loaded


def format_table(metrics: dict) -> str:
    lines = ["set | decoder | exact caption | token accuracy | ms/caption", "--- | --- | --- | --- | ---"]
    for name, results in metrics["sets"].items():
        for variant, r in results.items():
            lines.append(f"{name} | {variant} | {r['exact_caption_rate']:.4f} | {r['token_accuracy']:.4f} | "
                         f"{r['ms_per_caption']:.2f}")
    return "\n".join(lines)


def _report(metrics: dict, out: Path) -> None:
    print(format_table(metrics))
    out = output_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    write_file_atomically(out / "metrics.json", lambda tmp: Path(tmp).write_text(json.dumps(metrics, indent=2)))
    print(f"wrote {out / 'metrics.json'} (CPU: {metrics['cpu']})")


def _next_version(root: Path) -> Path:
    root = output_folder(root)
    taken = [int(p.name.split("_")[1]) for p in root.glob("version_*") if p.name.split("_")[1].isdigit()] \
        if root.is_dir() else []
    return root / f"version_{max(taken, default=-1) + 1}"
