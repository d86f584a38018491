"""Text-to-video and image-to-video over causal video-VAE latents (LTX-Video)."""
