"""Decoding captions from fMRI (Brain Captioning): voxels -> the captioner's image features -> text."""
