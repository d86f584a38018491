"""Training wiring shared by every unidit task: the rectified-flow Lightning base,
EMA weights, the learning-rate schedule and atomic export of pretrained weights."""

from unidit.training.ema import EMAWeights
from unidit.training.export import export_task, load_task
from unidit.training.flow_task import FlowInputs, FlowMatchingTask
from unidit.training.schedule import warmup_cosine

__all__ = ["EMAWeights", "FlowInputs", "FlowMatchingTask", "export_task", "load_task", "warmup_cosine"]
