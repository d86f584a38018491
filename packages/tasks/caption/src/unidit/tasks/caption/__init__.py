"""Image captioning by diffusion in a BERT latent space (LaDiC)."""
