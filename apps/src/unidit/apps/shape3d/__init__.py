"""The 3D shape app: ``unidit fit|sample|eval shape3d``."""
