"""``unidit fit|sample|eval motion``: text-to-motion by masked discrete diffusion on motion VQ codes."""
