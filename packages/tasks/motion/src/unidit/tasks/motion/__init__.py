"""Text-to-motion (issue: motion VQ-VAE + masked discrete diffusion)."""
