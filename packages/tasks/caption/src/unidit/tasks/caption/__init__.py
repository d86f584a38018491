"""Image captioning by diffusion in a BERT latent space (LaDiC, Wang et al. 2024): scenes, loaders, metrics, the flow captioner."""
