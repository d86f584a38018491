"""``unidit <verb> <app> [options]`` — the single entry point.

Verbs: ``fit`` (LightningCLI training from the app's YAML config, then
samples and metrics), ``sample`` (media files from a checkpoint) and ``eval``
(the metric table). ``unidit fit shape3d --help`` lists every option.

Expected mistakes (a missing or foreign checkpoint, an unreadable input file,
an option out of range, an ``--out`` that is a file) print one line,
``unidit: error: …``, and exit with status 2; ``--debug`` (or
``UNIDIT_DEBUG=1``) shows the Python traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

from jsonargparse import ArgumentError
from unidit.apps.arguments import UsageError
from unidit.training.host_memory import retain_freed_host_memory

# Noise from Lightning internals that says nothing to a user of this command: the
# EMA copy of the denoiser is deliberately kept in eval mode during training.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

# App name → "module:attribute" of a TaskApp declaration, or a module with fit / sample / evaluate functions.
APPS = {
    "shape3d": "unidit.apps.shape3d.app:APP",
    "t2a": "unidit.apps.t2a.app:APP",
    "t2v": "unidit.apps.t2v.app:APP",
    "audio-vae": "unidit.apps.audio_vae.app",
    "video-vae": "unidit.apps.video_vae.app",
    "motion-vq": "unidit.apps.motion_vq.app",
    "motion": "unidit.apps.motion.app:APP",
    "text-latent": "unidit.apps.text_latent.app",
    "caption": "unidit.apps.caption.app:APP",
    "fmri": "unidit.apps.fmri.app:APP",
    "joint": "unidit.apps.joint.app:APP",
    "tts": "unidit.apps.tts.app:APP",
}
VERBS = {"fit": "fit", "sample": "sample", "eval": "evaluate"}
EXIT_USAGE = 2
EXPECTED_ERRORS = (ValueError, OSError, ArgumentError)  # UsageError is a ValueError

USAGE = f"""usage: unidit <verb> <app> [options] [--debug]

verbs: {", ".join(VERBS)}
apps:  {", ".join(APPS)}

  unidit fit shape3d                       train on the embedded data, then write samples + metrics
  unidit fit shape3d --config my.yaml      any LightningCLI option/config overrides the defaults
  unidit sample shape3d --ckpt RUN/model --prompt "a large torus" --out samples/
  unidit eval shape3d --ckpt RUN/model
  unidit fit audio-vae / unidit fit video-vae          the tokenizers' own training apps
  unidit fit motion-vq / unidit eval motion-vq --ckpt RUN/model   the motion VQ-VAE (HumanML3D features)
  unidit fit motion / unidit sample motion --ckpt RUN/model --prompt "a person waves" --out out/   text-to-motion
                                                     (trains the motion VQ-VAE first unless --model.vqvae is given)
  unidit fit text-latent                             the caption text-latent tokenizer (MiniLM split)
  unidit fit caption / unidit sample caption --ckpt RUN/model --image a.png b.png --out out/   image captioning
  unidit fit fmri / unidit sample fmri --ckpt RUN/model --subject subj01 --image_id '[0, 5]' --out out/   captions from fMRI
  unidit fit joint --tasks shape3d,t2a,t2v           one backbone for several tasks; sample/eval each with --ckpt RUN/model
  unidit fit t2a                                     trains an audio VAE first unless --model.vae is given
  unidit sample t2a --ckpt RUN/model --prompt "a bell rings twice" --seconds 3 --out out/
  unidit sample t2a --ckpt RUN/model --prompt "a siren" --inpaint in.wav --start 1.0 --end 2.0 --out out/
  unidit fit t2v                                     trains a video VAE first unless --model.vae is given
  unidit sample t2v --ckpt RUN/model --prompt "a red circle moves up" --image first.png --out out/
  unidit fit tts                                     text-to-speech; trains an audio VAE on the speech first unless --model.vae
  unidit sample tts --ckpt RUN/model --text "Anna found seven keys." --voice NAME --out out/
  unidit sample tts --ckpt RUN/model --text "Where is the river?" --prompt_wav ref.wav --prompt_text "…" --out out/
"""


class _DropLightningTips(logging.Filter):
    """Lightning advertises a cloud logger on every run; a command line tool keeps its output to the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip")


def load_app(name: str):
    """The app registered as ``name``: a ``TaskApp`` instance or a module with the three verbs."""
    target, _, attribute = APPS[name].partition(":")
    module = importlib.import_module(target)
    return getattr(module, attribute) if attribute else module


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("UNIDIT_DEBUG", "").lower() in ("1", "true", "yes")
    args = [a for a in args if a != "--debug"]
    try:
        return _run(args)
    except EXPECTED_ERRORS as error:
        if debug:
            raise
        print(f"unidit: error: {one_line(error)}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            raise
        print("unidit: interrupted", file=sys.stderr, flush=True)
        return 130


def _run(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(args) < 2:
        raise UsageError(f"expected a verb and an app, got {' '.join(args)!r} (see unidit --help)")
    verb, name, rest = args[0], args[1], args[2:]
    if verb not in VERBS:
        raise UsageError(f"unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
    if name not in APPS:
        raise UsageError(f"unknown app {name!r}; expected one of {', '.join(APPS)}")
    retain_freed_host_memory()  # CPU steps reuse freed memory instead of page-faulting it in again
    for logger_name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(logger_name).addFilter(_DropLightningTips())
    getattr(load_app(name), VERBS[verb])(rest)
    return 0


def one_line(error: BaseException) -> str:
    """The error's message on one line (jsonargparse and chained errors span several)."""
    text = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    if isinstance(error, FileNotFoundError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return text or type(error).__name__


if __name__ == "__main__":
    raise SystemExit(main())
