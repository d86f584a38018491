"""``unidit fit|sample|eval motion-vq``: the motion VQ-VAE's own training app."""
