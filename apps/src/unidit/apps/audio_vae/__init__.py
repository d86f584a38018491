"""``unidit fit|sample|eval audio-vae``: the 1D waveform VAE's own training app."""
