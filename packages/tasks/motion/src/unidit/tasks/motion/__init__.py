"""Text-to-motion: procedural skeleton motions as HumanML3D features, motion VQ codes, masked discrete diffusion (MoMask / M2DM)."""
