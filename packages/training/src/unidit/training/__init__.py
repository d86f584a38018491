"""Training wiring shared by every unidit task: the rectified-flow Lightning base,
EMA weights, the learning-rate schedule, atomic export of pretrained weights, and
fault tolerance (exact resume, atomic checkpoints, preemption, non-finite losses)."""

from unidit.training.checkpointing import AtomicCheckpointIO, Preempted, PreemptionCheckpoint
from unidit.training.ema import EMAWeights
from unidit.training.export import export_task, load_task
from unidit.training.flow_task import FlowInputs, FlowMatchingTask
from unidit.training.nonfinite import NonFiniteLossError
from unidit.training.resumable_sampler import ResumableDataLoader, ResumableSampler
from unidit.training.schedule import warmup_cosine

__all__ = [
    "AtomicCheckpointIO",
    "EMAWeights",
    "FlowInputs",
    "FlowMatchingTask",
    "NonFiniteLossError",
    "Preempted",
    "PreemptionCheckpoint",
    "ResumableDataLoader",
    "ResumableSampler",
    "export_task",
    "load_task",
    "warmup_cosine",
]
