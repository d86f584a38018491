"""``unidit <verb> <task> [options]`` — the single entry point.

Verbs: ``fit`` (LightningCLI training from the task's YAML config, then
samples and metrics), ``sample`` (media files from a checkpoint) and ``eval``
(the task's metric table). ``unidit fit shape3d --help`` lists every option.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from unidit.training.host_memory import retain_freed_host_memory

# Noise from Lightning internals that says nothing to a user of this command: the
# EMA copy of the denoiser is deliberately kept in eval mode during training.
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

# Task name → module holding that task's app (``fit``, ``sample``, ``evaluate`` functions).
TASK_APPS = {
    "shape3d": "unidit.apps.shape3d.app",
    "audio-vae": "unidit.apps.audio_vae.app",
    "t2a": "unidit.apps.t2a.app",
    "video-vae": "unidit.apps.video_vae.app",
    "t2v": "unidit.apps.t2v.app",
}
VERBS = ("fit", "sample", "eval")

USAGE = f"""usage: unidit <verb> <task> [options]

verbs: {", ".join(VERBS)}
tasks: {", ".join(sorted(TASK_APPS))}

  unidit fit shape3d                       train on the embedded data, then write samples + metrics
  unidit fit shape3d --config my.yaml      any LightningCLI option/config overrides the defaults
  unidit sample shape3d --ckpt RUN/model --prompt "a large torus" --out samples/
  unidit eval shape3d --ckpt RUN/model
  unidit fit audio-vae / unidit fit video-vae          the tokenizers' own training apps
  unidit fit t2a                                     trains an audio VAE first unless --model.vae is given
  unidit sample t2a --ckpt RUN/model --prompt "a bell rings twice" --seconds 3 --out out/
  unidit sample t2a --ckpt RUN/model --prompt "a siren" --inpaint in.wav --start 1.0 --end 2.0 --out out/
  unidit fit t2v                                     trains a video VAE first unless --model.vae is given
  unidit sample t2v --ckpt RUN/model --prompt "a red circle moves up" --image first.png --out out/
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if len(args) < 2:
        print(USAGE, file=sys.stderr)
        raise SystemExit(f"unidit: expected a verb and a task, got {' '.join(args)!r}")
    verb, task, rest = args[0], args[1], args[2:]
    if verb not in VERBS:
        raise SystemExit(f"unidit: unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
    if task not in TASK_APPS:
        raise SystemExit(f"unidit: unknown task {task!r}; expected one of {', '.join(sorted(TASK_APPS))}")
    retain_freed_host_memory()  # CPU steps reuse freed memory instead of page-faulting it in again
    app = importlib.import_module(TASK_APPS[task])
    entry = {"fit": app.fit, "sample": app.sample, "eval": app.evaluate}[verb]
    entry(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
