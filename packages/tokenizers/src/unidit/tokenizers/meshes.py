"""Reading shapes as point clouds and writing point clouds as PLY.

The voxel tokenizer (DiT-3D, Mo et al. 2023) works on point clouds of a fixed
size.  Real data comes either as point arrays (ShapeNet PC15k ``.npy`` files of
PointFlow, Yang et al. 2019, each ``(15000, 3)``) or as meshes; a mesh becomes a
cloud by sampling its surface uniformly with respect to area, as PointFlow did
to build PC15k.  Everything here is deterministic given a seed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl", ".glb", ".gltf")


def load_points(path: str | os.PathLike, num_points: int, seed: int = 0) -> np.ndarray:
    """Load a shape file as ``num_points`` surface points.

    ``.npy`` arrays of shape ``(M, 3)`` and point-cloud files (a ``.ply`` with
    vertices but no faces) are subsampled without replacement; meshes
    (``.ply``/``.obj``/``.off``/``.stl``) are sampled on their surface with
    area-weighted uniform density.

    Args:
        path: file to read.
        num_points: size of the returned cloud.
        seed: seeds the subsampling / surface sampling.
    Returns:
        ``(num_points, 3)`` float32 array.
    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, wrong shape, non-finite values, empty mesh,
            too few points or unknown suffix; the message names the file.
    """
    path = Path(path)
    if num_points <= 0:
        raise ValueError(f"num_points must be positive, got {num_points}")
    if not path.is_file():
        raise FileNotFoundError(f"shape file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        points = _read_npy(path)
        return _subsample(points, num_points, seed, path)
    if suffix not in MESH_SUFFIXES:
        raise ValueError(f"{path}: unsupported suffix {suffix!r}; expected .npy or one of {MESH_SUFFIXES}")
    return _sample_mesh_file(path, num_points, seed)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for corrupt files
        raise ValueError(f"{path}: could not read .npy array ({error})") from error
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{path}: expected an array of shape (M, 3), got {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    _check_finite(array, path)
    return array.astype(np.float32, copy=False)


def _sample_mesh_file(path: Path, num_points: int, seed: int) -> np.ndarray:
    import trimesh  # heavy import; only needed for meshes

    try:
        loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises many types on bad files
        raise ValueError(f"{path}: could not read shape file ({error})") from error
    if isinstance(loaded, trimesh.Scene):
        if len(loaded.geometry) == 0:
            raise ValueError(f"{path}: file holds no geometry (empty or unreadable)")
        try:
            loaded = loaded.to_mesh()
        except Exception as error:
            raise ValueError(f"{path}: could not merge the scene into one mesh ({error})") from error
    vertices = np.asarray(getattr(loaded, "vertices", np.zeros((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))))
    if len(vertices) == 0:
        raise ValueError(f"{path}: empty shape (no vertices)")
    _check_finite(vertices, path)
    if len(faces) == 0:  # a point cloud stored as a mesh format
        return _subsample(vertices.astype(np.float32), num_points, seed, path)
    if not float(loaded.area) > 0.0:
        raise ValueError(f"{path}: empty mesh (total surface area is zero)")
    points, _ = trimesh.sample.sample_surface(loaded, num_points, seed=seed)
    return np.ascontiguousarray(points, dtype=np.float32)


def _subsample(points: np.ndarray, num_points: int, seed: int, path: Path) -> np.ndarray:
    if len(points) < num_points:
        raise ValueError(f"{path}: too few points: has {len(points)}, need {num_points}")
    index = np.random.default_rng(seed).choice(len(points), size=num_points, replace=False)
    return np.ascontiguousarray(points[np.sort(index)], dtype=np.float32)


def _check_finite(array: np.ndarray, path: Path) -> None:
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: contains NaN or Inf values")


def write_ply(path: str | os.PathLike, points: np.ndarray, binary: bool = True) -> Path:
    """Write a point cloud as a PLY file of vertices, atomically.

    Args:
        path: destination; parent folders are created.
        points: ``(N, 3)`` array (a torch tensor is accepted too).
        binary: binary little-endian (default) or ASCII.
    Returns:
        The written path.  The file appears only once complete (written to a
        temporary file in the same folder, then ``os.replace``).
    """
    path = Path(path)
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape} (writing {path})")
    fmt = "binary_little_endian" if binary else "ascii"
    header = (
        f"ply\nformat {fmt} 1.0\nelement vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    if binary:
        body = points.astype("<f4").tobytes()
    else:
        body = "".join(f"{x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in points).encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(header.encode("ascii"))
            file.write(body)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a written cloud is ordinary output
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
