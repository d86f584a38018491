"""A joint run's export: one folder per task (each a complete single-task export) and the shared backbone.

``<run>/model/joint.json`` names the tasks and their modality ids;
``<run>/model/<task>/`` is what ``unidit fit <task>`` would export (EMA
weights of that task's parts *and* the shared backbone, ``task.json``, a
bundled tokenizer), so ``unidit sample|eval <task> --ckpt <run>/model`` loads
it with the task's own loader and sets its modality id
(:func:`unidit.apps.task_app.joint_part`); ``<run>/model/backbone/`` is the
shared backbone alone (``save_pretrained``), ready to start another run
(transfer). The backbone's weights are thus written once per task plus once:
simple and self-contained, at the cost of disk (not of parameters).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from unidit.apps.joint.task import JointTask
from unidit.apps.task_app import JOINT_FILE
from unidit.training.export import export_task, write_folder_atomically

BACKBONE_FOLDER = "backbone"


def export_joint(task: JointTask, directory: str | os.PathLike,
                 after_export: Callable[[str, object, Path], None] | None = None) -> Path:
    """Write every task's part (EMA weights) and the shared backbone to ``directory`` atomically.

    ``after_export(name, single_task, folder)`` runs for each task's folder (e.g. the task's
    app bundling its tokenizer).
    """

    def write(staging: Path) -> None:
        try:
            for name in task.task_names:
                view = task.task_view(name)
                export_task(view, staging / name)
                if after_export is not None:
                    after_export(name, view, staging / name)
        finally:
            task.release_views()
        task.sampling_network().backbone.save_pretrained(staging / BACKBONE_FOLDER)
        meta = {"tasks": task.task_names, "modalities": {n: i for i, n in enumerate(task.task_names)},
                "backbone": BACKBONE_FOLDER}
        (staging / JOINT_FILE).write_text(json.dumps(meta, indent=2))

    return write_folder_atomically(directory, write)
