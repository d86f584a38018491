"""``unidit fit joint --tasks shape3d,t2a,t2v``: one backbone trained on several tasks at once.

``fit`` is LightningCLI over ``fit.yaml`` (every field overridable, exact
resume with ``--ckpt_path``) on :class:`~unidit.apps.joint.task.JointTask` and
:class:`~unidit.apps.joint.data.JointData`. ``--tasks a,b`` sets both
``model.tasks`` and ``data.tasks``. Tokenizers are found as each task's own app
finds them: ``--model.vae '{t2a: DIR, t2v: DIR, motion: DIR}'``, else the folder a
resumed checkpoint recorded, else one trained first with ``unidit fit audio-vae`` /
``unidit fit video-vae`` / ``unidit fit motion-vq`` under the same ``--trainer.default_root_dir``.

After training it writes ``<run>/model`` (:func:`~unidit.apps.joint.export.export_joint`:
``joint.json``, one complete single-task export per task, the shared backbone)
and runs ``unidit eval <task> --ckpt <run>/model --out <run>/report/<task>`` for
each task, with that task's data options of the joint run. ``unidit sample|eval
<task> --ckpt <run>/model`` then serve every task from the one checkpoint;
``unidit eval joint --ckpt <run>/model`` prints every task's table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from unidit.apps.arguments import UsageError
from unidit.apps.joint.export import export_joint
from unidit.apps.joint.task import parse_tasks
from unidit.apps.t2a.app import option_value
from unidit.apps.t2v.app import VideoVAEFit
from unidit.apps.task_app import JOINT_FILE, TaskApp, asks_for_help
from unidit.apps.task_cli import build_cli, checkpoint_hparam, fit_cli, resolve_ckpt_path, run_directory, step_summary

CONFIG = Path(__file__).parent / "fit.yaml"


def task_app(name: str) -> TaskApp:
    """The single-task app of ``name`` (its loader, its evaluation, its sampler, its export hooks)."""
    if name == "shape3d":
        from unidit.apps.shape3d.app import APP
    elif name == "t2a":
        from unidit.apps.t2a.app import APP
    elif name == "t2v":
        from unidit.apps.t2v.app import APP
    elif name == "motion":
        from unidit.apps.motion.app import APP
    else:
        parse_tasks(name)  # the clear error naming the known tasks
    return APP


def fit_audio_vae(argv: list[str]) -> Path:
    """``unidit fit audio-vae argv``; returns its run folder (a module attribute, so tests can stand in)."""
    from unidit.apps.audio_vae.app import fit

    return Path(fit(argv))


def fit_motion_vq(argv: list[str]) -> Path:
    """``unidit fit motion-vq argv``; returns its run folder."""
    from unidit.apps.motion_vq.app import fit

    return Path(fit(argv))


def fit_video_vae(argv: list[str]) -> Path:
    """``unidit fit video-vae argv``; returns its run folder."""
    from unidit.apps.video_vae.app import fit

    return Path(fit(argv))


@dataclass
class JointReport:
    """What ``unidit fit joint`` measures after training.

    Attributes:
        enabled: run each task's ``unidit eval`` on the export (into ``<run>/report/<task>``).
        args: extra ``unidit eval <task>`` options per task, e.g. ``{"t2v": ["--report.num_clips", "16"]}``.
    """

    enabled: bool = True
    args: dict[str, list[str]] = field(default_factory=dict)


class JointApp:
    """``unidit fit|sample|eval joint``."""

    name = "joint"
    config = CONFIG
    extra_groups = {"report": JointReport, "video_vae": VideoVAEFit}

    @property
    def task_class(self) -> type:
        return _JointTask()

    @property
    def data_class(self) -> type:
        return _JointData()

    def prepare_argv(self, argv: list[str]) -> list[str]:
        """``--tasks`` -> ``--model.tasks`` + ``--data.tasks``; name an audio VAE when t2a is a task."""
        argv = list(argv)
        tasks = option_value(argv, "--tasks")
        if tasks is not None:
            parse_tasks(tasks)
            argv = [a for i, a in enumerate(argv) if not _is_option(argv, i, "--tasks")]
            argv += [f"--model.tasks={tasks}", f"--data.tasks={tasks}"]
        return argv

    def train(self, argv: list[str]):
        """Parse over ``fit.yaml``, find or train the tokenizers, train; returns the LightningCLI."""
        argv = self.prepare_argv(argv)
        if not asks_for_help(argv):  # --help must not train a tokenizer first
            argv = self._with_tokenizers(argv)
        cli = build_cli(self.task_class, self.data_class, self.config, argv, self.extra_groups)
        model_tasks, data_tasks = cli.model.task_names, cli.datamodule.names
        if model_tasks != data_tasks:
            raise ValueError(f"model.tasks {model_tasks} and data.tasks {data_tasks} differ; set both with --tasks")
        ckpt_path = resolve_ckpt_path(cli.trainer, cli.config.get("ckpt_path"))
        if "t2v" in model_tasks:
            self._ensure_video_vae(cli, ckpt_path)
        fit_cli(cli, ckpt_path)
        return cli

    def fit(self, argv: list[str]) -> Path:
        """``unidit fit joint``: train, export ``<run>/model``, evaluate each task into ``<run>/report/<task>``."""
        cli = self.train(argv)
        run_dir = run_directory(cli.trainer)
        if not cli.trainer.is_global_zero:
            return run_dir
        model_dir = export_joint(cli.model, run_dir / "model",
                                 lambda name, view, folder: task_app(name).after_export(view, folder))
        print(f"exported EMA weights of {', '.join(cli.model.task_names)} to {model_dir}", flush=True)
        report = JointReport(**cli.config["report"])
        if report.enabled:
            for name in cli.model.task_names:
                print(f"== {name}", flush=True)
                task_app(name).evaluate(["--ckpt", str(model_dir), "--out", str(run_dir / "report" / name),
                                         *task_data_args(cli.config["data"], name), *report.args.get(name, [])])
        print(step_summary(cli.trainer), flush=True)
        return run_dir

    def sample(self, argv: list[str]) -> None:
        raise UsageError("a joint checkpoint is sampled one task at a time: "
                         "unidit sample <task> --ckpt <joint run>/model --prompt ... --out ...")

    def evaluate(self, argv: list[str]) -> dict:
        """``unidit eval joint --ckpt <run>/model [--<task>.<option> ...]``: every task's metric table."""
        if "--ckpt" not in argv or argv.index("--ckpt") + 1 >= len(argv):
            raise UsageError("unidit eval joint: expected --ckpt <joint run>/model")
        ckpt = argv[argv.index("--ckpt") + 1]
        meta_path = Path(ckpt) / JOINT_FILE
        if not meta_path.is_file():
            raise ValueError(f"--ckpt {ckpt}: no {JOINT_FILE} there; expected the <run>/model of `unidit fit joint`")
        tasks = json.loads(meta_path.read_text())["tasks"]
        rest = [a for i, a in enumerate(argv) if not (_is_option(argv, i, "--ckpt"))]
        metrics = {}
        for name in tasks:
            print(f"== {name}", flush=True)
            own = [a.replace(f"--{name}.", "--", 1) for a in rest]  # --t2a.report.steps 2 -> --report.steps 2
            own = _only_task(own, rest, name, tasks)
            metrics[name] = task_app(name).evaluate(["--ckpt", ckpt, *own])
        return metrics

    def _with_tokenizers(self, argv: list[str]) -> list[str]:
        """``--model.vae`` with entries for t2a and motion when they are tasks: given, a resumed run's, or
        trained now (``unidit fit audio-vae`` / ``unidit fit motion-vq``). t2v's is found after parsing."""
        tasks = parse_tasks(option_value(argv, "--model.tasks") or _yaml_tasks())
        given = _vae_option(argv)
        missing = [name for name in ("t2a", "motion") if name in tasks and not given.get(name)]
        if not missing:
            return argv
        recorded = checkpoint_hparam(option_value(argv, "--ckpt_path"), "vae") or {}
        root = option_value(argv, "--trainer.default_root_dir")
        root_argv = [] if root is None else ["--trainer.default_root_dir", root]
        trainers = {"t2a": ("audio VAE", "audio-vae", fit_audio_vae), "motion": ("motion VQ-VAE", "motion-vq",
                                                                                 fit_motion_vq)}
        found = {}
        for name in missing:
            found[name] = recorded.get(name)
            if found[name] is None:
                what, app, fit = trainers[name]
                print(f"no {name} tokenizer in --model.vae: training the {what} first (unidit fit {app} "
                      f"{' '.join(root_argv)})", flush=True)
                found[name] = str(fit(root_argv) / "model")
        return [*argv, f"--model.vae={json.dumps({**given, **found})}"]

    def _ensure_video_vae(self, cli, ckpt_path: str | None) -> None:
        """t2v's VAE: the one given, the one a resumed checkpoint used, or the default one trained now."""
        sub = cli.model.subtasks["t2v"]
        if sub.vae_path is not None:
            return
        vae = (checkpoint_hparam(ckpt_path, "vae") or {}).get("t2v")
        if vae is None:
            data = cli.datamodule.modules["t2v"].hparams
            argv = ["--trainer.default_root_dir", str(cli.trainer.default_root_dir), "--data.seed", str(data.seed)]
            if data.cache_dir is not None:
                argv += ["--data.cache_dir", str(data.cache_dir)]
            argv += list(cli.config["video_vae"].get("args") or [])
            print(f"no t2v VAE in --model.vae: training a video VAE first (unidit fit video-vae {' '.join(argv)})",
                  flush=True)
            vae = str((fit_video_vae(argv) / "model").resolve())
        sub.vae_path = str(vae)
        sub.hparams["vae"] = str(vae)  # recorded in the task's export
        cli.model.hparams["vae"] = {**dict(cli.model.hparams.get("vae") or {}), "t2v": str(vae)}  # and in checkpoints


def task_data_args(data_config, name: str) -> list[str]:
    """The joint run's ``data.task_data.<name>`` as ``unidit eval <name>`` options (``--data.key=value``)."""
    options = dict((data_config.get("task_data") or {}).get(name) or {})
    return [f"--data.{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in options.items() if value is not None]


def _vae_option(argv: list[str]) -> dict:
    import yaml

    value = option_value(argv, "--model.vae")
    if value is None:
        return dict((yaml.safe_load(CONFIG.read_text()).get("model") or {}).get("vae") or {})
    parsed = yaml.safe_load(value)
    if not isinstance(parsed, dict):
        raise UsageError(f"--model.vae: expected a mapping task -> tokenizer folder, e.g. '{{t2a: DIR}}', got {value}")
    return parsed


def _yaml_tasks() -> str:
    import yaml

    return str((yaml.safe_load(CONFIG.read_text()).get("model") or {}).get("tasks"))


def _is_option(argv: list[str], index: int, option: str) -> bool:
    """Whether ``argv[index]`` is ``option`` / ``option=...`` or the value right after a bare ``option``."""
    arg = argv[index]
    return arg == option or arg.startswith(option + "=") or (index > 0 and argv[index - 1] == option)


def _only_task(own: list[str], rest: list[str], name: str, tasks: list[str]) -> list[str]:
    """Drop the options (and their values) meant for another task (``--t2v.…`` while evaluating t2a)."""
    others = tuple(f"--{t}." for t in tasks if t != name)
    kept, skip = [], False
    for original, arg in zip(rest, own):
        if skip:
            skip = False
            continue
        if original.startswith(others):
            skip = "=" not in original
            continue
        kept.append(arg)
    return kept


def _JointTask():
    from unidit.apps.joint.task import JointTask

    return JointTask


def _JointData():
    from unidit.apps.joint.data import JointData

    return JointData


APP = JointApp()
