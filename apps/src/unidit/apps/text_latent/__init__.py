"""``unidit fit|eval|sample text-latent``: the LaDiC text-latent tokenizer on the embedded scene captions."""
