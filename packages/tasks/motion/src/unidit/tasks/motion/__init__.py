"""Text-to-motion on the shared backbone (HumanML3D-style motion features). Not yet usable: the package holds no code."""
