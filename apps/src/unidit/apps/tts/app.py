"""``unidit fit|sample|eval tts``: text-to-speech on audio-VAE latents (SimpleSpeech 2 / F5-TTS).

``fit`` needs three things the model is built from, and makes any that is not given:

- the audio VAE (``--model.vae DIR``, an ``unidit fit audio-vae`` export): without one it trains
  the VAE first on the corpus' training and validation wavs, resampled to the VAE's 16 kHz
  (``unidit fit audio-vae --data.source folder``; options for it go as ``--vae.<option>``,
  e.g. ``--vae.trainer.max_steps 800``);
- the text tokenizer (``--model.tokenizer DIR``): without one it fits a sentencepiece model on
  the training transcripts (``--tokenizer.kind char|bpe``, ``--tokenizer.vocab_size N``);
- the voices (``--model.speakers``): the training split's speakers.

A resumed run (``--ckpt_path``) reuses all three. It then trains from ``fit.yaml``, exports
``<run>/model`` and writes ``<run>/report``. ``sample`` speaks ``--text`` in a ``--voice`` or
in the voice of ``--prompt_wav`` (with its transcript ``--prompt_text``); ``eval`` prints the
metric table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import soundfile
import yaml
from unidit.apps.arguments import UsageError, input_file, output_folder
from unidit.apps.t2a.app import given_vae, option_value
from unidit.apps.task_app import TaskApp
from unidit.apps.task_cli import checkpoint_hparam
from unidit.tasks.tts.datamodule import TTSData
from unidit.tasks.tts.evaluate import TTSReport, evaluate_tts
from unidit.tasks.tts.frontend import Line
from unidit.tasks.tts.media import write_utterances
from unidit.tasks.tts.task import TTSTask, VoicePrompt
from unidit.tasks.tts.text import TextTokenizer, TokenizerConfig
from unidit.tokenizers.audio_io import load_audio
from unidit.training.sampling import generate_in_batches


class TTSApp(TaskApp, name="tts", task=TTSTask, data=TTSData, report=TTSReport,
             media="speech (.wav + mel spectrogram .png)", extra_groups={"tokenizer": TokenizerConfig}):
    inputs = "texts"

    # -- fit ------------------------------------------------------------------------------
    def prepare_argv(self, argv: list[str]) -> list[str]:
        """Name the VAE, the tokenizer and the voices: given, from a resumed checkpoint, or made now."""
        argv, vae_argv = split_group(argv, "--vae.")
        resumed = option_value(argv, "--ckpt_path")
        root = Path(option_value(argv, "--trainer.default_root_dir") or "runs")
        try:
            data = TTSData(**self.group_options(argv, "data"))
        except TypeError as error:  # an unknown --data.<key>
            raise UsageError(f"--data: {error}") from None
        added = []
        vae = given_vae(argv) or checkpoint_hparam(resumed, "vae")
        if vae is None:
            vae = train_vae(data, root, vae_argv)
            added.append(f"--model.vae={vae}")
        elif given_vae(argv) is None:
            added.append(f"--model.vae={vae}")
        if self.model_option(argv, "tokenizer") is None:
            folder = checkpoint_hparam(resumed, "tokenizer")
            if folder is None:
                folder = fit_tokenizer(data, TokenizerConfig(**self.group_options(argv, "tokenizer")), root)
            added.append(f"--model.tokenizer={folder}")
        if self.model_option(argv, "speakers") is None:
            speakers = checkpoint_hparam(resumed, "speakers") or data.speakers()
            added.append(f"--model.speakers={json.dumps(list(speakers))}")
        return [*argv, *added]

    def group_options(self, argv: list[str], group: str) -> dict:
        """The options of one config group: ``fit.yaml``, then ``--config`` files, then ``--group.key`` values."""
        options = dict((yaml.safe_load(self.config.read_text()) or {}).get(group) or {})
        for index, arg in enumerate(argv):
            if arg == "--config" and index + 1 < len(argv) and Path(argv[index + 1]).is_file():
                options.update((yaml.safe_load(Path(argv[index + 1]).read_text()) or {}).get(group) or {})
        prefix = f"--{group}."
        for index, arg in enumerate(argv):
            if arg.startswith(prefix):
                key, _, value = arg[len(prefix):].partition("=")
                if not _ and index + 1 < len(argv):
                    value = argv[index + 1]
                options[key] = yaml.safe_load(value)
        return options

    def model_option(self, argv: list[str], key: str):
        return self.group_options(argv, "model").get(key)

    def prepare_eval(self, task: TTSTask, data: TTSData) -> None:
        data.attach_vae(task.require_vae())

    def measure(self, task: TTSTask, data: TTSData, report: TTSReport):
        return evaluate_tts(task, data, report)

    # -- sample -----------------------------------------------------------------------------
    def add_input_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--text", action="append", required=True, help="text to speak; repeat for several")

    def add_sample_arguments(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("tts")
        group.add_argument("--voice", help="a training voice by name (see task.json's speakers)")
        group.add_argument("--prompt_wav", help="reference clip whose voice is continued (at least the model's rate)")
        group.add_argument("--prompt_text", help="the transcript of --prompt_wav")
        group.add_argument("--seconds", type=float, action="append",
                           help="duration: once for all texts or once per text (default: predicted)")
        group.add_argument("--speed", type=float, default=1.0, help="speaking rate: durations are divided by it")

    def sample(self, argv: list[str]) -> Path:
        """``unidit sample tts``: ``--num`` utterances of each ``--text``, as wav + spectrogram PNG."""
        args = self.sample_parser().parse_args(argv)
        out = output_folder(args.out)
        options = self.sampling_options(args)
        if not args.speed > 0:
            raise UsageError(f"--speed: expected a positive number, got {args.speed}")
        seconds = args.seconds
        if seconds is not None and (min(seconds) <= 0 or len(seconds) not in (1, len(args.text))):
            raise UsageError(f"--seconds: expected positive durations, once or once per --text ({len(args.text)}), "
                             f"got {seconds}")
        if bool(args.prompt_wav) != bool(args.prompt_text):
            raise UsageError("--prompt_wav and --prompt_text go together: the clip and its transcript")
        task = self.load_checkpoint(args.ckpt)
        for text in args.text:
            checked_text(task, text, "--text")
        if args.voice is not None and args.voice not in task.speakers:
            raise UsageError(f"--voice {args.voice!r}: unknown; this model knows {', '.join(task.speakers) or 'none'}")
        prompt = read_prompt(task, args.prompt_wav, args.prompt_text) if args.prompt_wav else None
        lines = [Line(text, args.voice) for text in args.text for _ in range(args.num)]
        per_line = None if seconds is None else [s for s in (seconds * len(args.text) if len(seconds) == 1 else seconds)
                                                 for _ in range(args.num)]
        batches = generate_in_batches(
            lambda part, opts: task.sample_speech(lines[part], None if per_line is None else per_line[part],
                                                  options=opts, prompt=prompt, speed=args.speed),
            len(lines), options, args.batch_size)
        clips = [clip for batch in batches for clip in batch]
        voice = args.voice or ("prompt voice" if prompt else "unknown voice")
        write_utterances(out, clips, [f"{voice}: {line.text}" for line in lines], task.sample_rate,
                         prompt=None if prompt is None else prompt.audio)
        print(f"wrote {len(clips)} utterances (.wav + mel spectrogram .png) and overview.png to {out}", flush=True)
        return out


def split_group(argv: list[str], prefix: str) -> tuple[list[str], list[str]]:
    """``(the rest, the options starting with prefix)`` of ``argv``, each option with its value
    (``--x.y v`` or ``--x.y=v``)."""
    kept, taken, owner = [], [], None
    for arg in argv:
        if owner is not None:
            owner.append(arg)
            owner = None
        elif arg.startswith(prefix):
            taken.append(arg)
            owner = None if "=" in arg else taken
        else:
            kept.append(arg)
    return kept, taken


def checked_text(task: TTSTask, text: str, option: str) -> str:
    try:
        task.frontend.text_ids(text)
    except ValueError as error:
        raise UsageError(f"{option} {text!r}: {error}") from None
    return text


def read_prompt(task: TTSTask, path: str, text: str) -> VoicePrompt:
    """The reference clip at the model's rate; refused when empty, unreadable or recorded below that rate."""
    path = input_file(path, "--prompt_wav")
    rate = task.sample_rate
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise UsageError(f"--prompt_wav {path}: unreadable; expected a wav/flac/ogg file ({error})") from None
    if info.frames <= 0:
        raise UsageError(f"--prompt_wav {path}: holds no samples; expected a clip of the voice speaking --prompt_text")
    if info.samplerate < rate:
        raise UsageError(f"--prompt_wav {path}: recorded at {info.samplerate} Hz; expected at least the model's "
                         f"{rate} Hz (higher rates are resampled; lower ones lack the bandwidth the model speaks in)")
    audio = load_audio(path, rate)
    checked_text(task, text, "--prompt_text")
    try:
        task.prompt_latents(VoicePrompt(audio, text))
    except ValueError as error:
        raise UsageError(f"--prompt_wav {path}: {error}") from None
    return VoicePrompt(audio, text)


def fit_tokenizer(data: TTSData, config: TokenizerConfig, root: Path) -> Path:
    """Fit the sentencepiece tokenizer on the training transcripts, saved under ``<root>/tts/tokenizers/<hash>``."""
    lines, _ = data.train_lines()
    texts = [line.text for line in lines]
    digest = hashlib.sha256(json.dumps([vars(config), texts]).encode()).hexdigest()[:16]
    folder = (root / "tts" / "tokenizers" / digest).resolve()
    if not (folder / "tokenizer.model").is_file():
        TextTokenizer.train(texts, config).save(folder)
        print(f"fitted a {config.kind} text tokenizer on {len(texts)} training transcripts: {folder}", flush=True)
    return folder


def train_vae(data: TTSData, root: Path, vae_argv: list[str]) -> Path:
    """Train the audio VAE on the corpus' training and validation wavs (never the test split); its model folder.

    The wavs are linked into one folder (``<root>/tts/vae_wavs/<hash>``) that
    ``unidit fit audio-vae --data.source folder`` reads, resampling to 16 kHz on load.
    """
    from unidit.apps.audio_vae.app import fit as fit_audio_vae

    utterances = data.splits()["train"] + data.splits()["val"]
    digest = hashlib.sha256("\n".join(str(u.wav.resolve()) for u in utterances).encode()).hexdigest()[:16]
    folder = (root / "tts" / "vae_wavs" / digest).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for u in utterances:
        link = folder / u.wav.name
        if not link.exists():
            link.symlink_to(u.wav.resolve())
    argv = ["--trainer.default_root_dir", str(root), "--data.source", "folder", "--data.folder", str(folder),
            *[arg.replace("--vae.", "--", 1) for arg in vae_argv]]
    print(f"no --model.vae given: training the audio VAE first on {len(utterances)} wavs "
          f"(unidit fit audio-vae {' '.join(argv)})", flush=True)
    return fit_audio_vae(argv) / "model"


APP = TTSApp()
