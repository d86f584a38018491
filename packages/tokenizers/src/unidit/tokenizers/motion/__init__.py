"""Motion tokenizer: HumanML3D's feature pipeline, the 22-joint skeleton and the motion VQ-VAE."""

from unidit.tokenizers.motion.config import PRESETS, MotionVQConfig, motion_vq_config
from unidit.tokenizers.motion.humanml3d import FPS, feature_slices, features_from_joints, recover_from_ric
from unidit.tokenizers.motion.module import MotionVQTraining
from unidit.tokenizers.motion.metrics import code_statistics, evaluate_clips, feature_l2, mpjpe_mm
from unidit.tokenizers.motion.skeleton import HUMANML3D, KIT, SkeletonLayout
from unidit.tokenizers.motion.vqvae import MotionVQLoss, MotionVQVAE

__all__ = [
    "FPS", "HUMANML3D", "KIT", "PRESETS", "MotionVQConfig", "MotionVQLoss", "MotionVQTraining", "MotionVQVAE", "SkeletonLayout",
    "code_statistics", "evaluate_clips", "feature_l2", "feature_slices", "features_from_joints", "motion_vq_config",
    "mpjpe_mm", "recover_from_ric",
]  # fmt: skip
