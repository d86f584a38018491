"""The video VAE app: ``unidit fit|sample|eval video-vae``."""
