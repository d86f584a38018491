"""Model-agnostic pieces of joint multi-task training: mixing, varlen rows of several tasks, the split loss."""
