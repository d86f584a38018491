"""Slot kinds of a packed token sequence (Lumina-T2X §2, "[nextline]/[nextframe]").

``DATA`` slots hold patch vectors, ``NEXTLINE`` / ``NEXTFRAME`` slots are the
learnable placeholders after each row / frame, ``PAD`` slots right-pad the
shorter samples of a batch and are masked out of attention.
"""

DATA, NEXTLINE, NEXTFRAME, PAD = 0, 1, 2, 3
