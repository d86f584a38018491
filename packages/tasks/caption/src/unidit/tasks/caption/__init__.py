"""Image captioning by diffusion in a BERT latent space (LaDiC, Wang et al. 2024). Not yet usable: the package holds no code."""
