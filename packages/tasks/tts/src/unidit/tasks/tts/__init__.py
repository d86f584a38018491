"""Text-to-speech: flow matching on audio-VAE latents with a sentence-duration predictor and voice prompting (SimpleSpeech 2, F5-TTS)."""
