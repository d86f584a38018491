"""Text-to-audio: procedural sound events, 1D audio-VAE latents, rectified flow (EzAudio)."""
