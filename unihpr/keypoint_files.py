"""Read 2D keypoint files and write lifted 3D poses: the files of ``unihpr lift``.

Input (one person, one row per video frame; ``J`` joints of the file's layout):

- **npz**: an array ``keypoints`` (T, J, 2) or (T, J, 3) (or one frame,
  (J, 2|3)), and optionally ``confidence`` or ``scores`` (T, J). A third
  keypoint column is the confidence when no such array is given (else it is
  ignored: a depth, for example). Read with ``allow_pickle=False``; each
  member's size is checked before it is read.
- **JSON**, COCO style: a list with one object per frame whose ``keypoints`` is
  the flat ``[x1, y1, v1, x2, y2, v2, ...]`` list of COCO annotations and
  results (``v`` is COCO's visibility flag or a score; both work as the
  confidence). ``null``, ``{}`` or an empty ``keypoints`` is a frame without a
  detection. When the objects carry an ``image_id`` (a COCO results file, a
  row per detection), there is one frame per ``image_id`` in increasing order,
  the detection with the highest ``score`` kept. Or an object
  ``{"keypoints": [frame, ...], "confidence": [[c, ...], ...]}`` whose frames
  are flat ``[x, y, v, ...]`` lists, or ``[[x, y], ...]`` or ``[[x, y, c], ...]``
  lists (``confidence``, or ``scores``, optional).
- **CSV**: one row per frame, columns ``x0, y0, c0, x1, y1, c1, ...`` (3 J
  columns) or ``x0, y0, x1, y1, ...`` (2 J columns, no confidence), joints in
  the layout's order; an optional first row of column names is skipped (the
  order is fixed, the names are not read); an empty cell or ``nan`` is a
  missed keypoint.

Size caps, checked before anything large is allocated (module constants):
npz members of at most [`MAX_FILE_BYTES`][unihpr.keypoint_files.MAX_FILE_BYTES],
JSON and CSV files of at most [`MAX_TEXT_BYTES`][unihpr.keypoint_files.MAX_TEXT_BYTES]
(parsed text takes several times its size in memory: use npz for long videos),
and at most [`MAX_KEYPOINTS`][unihpr.keypoint_files.MAX_KEYPOINTS] frames x joints.
"""

from __future__ import annotations

import csv
import json
import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from unihpr.data._safe_pickle import read_npy_stream
from unihpr.data.skeletons import get_skeleton, list_skeletons

__all__ = ["MAX_FILE_BYTES", "MAX_KEYPOINTS", "MAX_TEXT_BYTES", "read_keypoints", "write_poses"]

MAX_FILE_BYTES = 64 * 2**20
"""Largest npz member read, in bytes (64 MiB)."""
MAX_TEXT_BYTES = 16 * 2**20
"""Largest JSON or CSV file read, in bytes (16 MiB: about 20,000 frames of 33 joints)."""
MAX_KEYPOINTS = 4_000_000
"""Most frames x joints read from one file (over 30 hours of 33 joints at 30 fps)."""
_CONFIDENCE_KEYS = ("confidence", "scores")


def read_keypoints(
    path: str | os.PathLike, layout: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a keypoint file (npz, JSON or CSV, by its suffix; see the module doc).

    Args:
        path: The file.
        layout: The keypoints' layout (``"coco17"``, ...; see
            [`list_skeletons`][unihpr.data.skeletons.list_skeletons]): the file
            must hold its joint count. Needed for CSV and for a JSON file
            without any detection.

    Returns:
        ``(keypoints (T, J, 2) float64, confidence (T, J) float64 or None)``;
        missed keypoints are NaN.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is too large, unreadable, or not of the expected
            form; the message names the file and what was expected.
    """
    path = Path(path)
    num_joints = None if layout is None else get_skeleton(layout).num_joints
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    readers = {".npz": _read_npz, ".json": _read_json, ".csv": _read_csv}
    if suffix not in readers:
        raise ValueError(
            f"{path}: expected a .npz, .json or .csv file, got {suffix or 'no suffix'!r}"
        )
    if suffix != ".npz" and path.stat().st_size > MAX_TEXT_BYTES:
        raise ValueError(
            f"{path}: {path.stat().st_size} bytes, over the limit of {MAX_TEXT_BYTES} for "
            f"{suffix} files (write long inputs as .npz)"
        )
    kp, conf = readers[suffix](path, num_joints)
    if kp.ndim == 2:
        kp, conf = kp[None], None if conf is None else conf[None]
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3):
        raise ValueError(
            f"{path}: keypoints must have shape (T, J, 2) or (T, J, 3), got {kp.shape}"
        )
    if num_joints is not None and kp.shape[1] != num_joints:
        same = [n for n in list_skeletons() if get_skeleton(n).num_joints == kp.shape[1]]
        raise ValueError(
            f"{path}: {kp.shape[1]} keypoints per frame, but layout {layout!r} has "
            f"{num_joints}" + (f" ({kp.shape[1]} is the joint count of {same})" if same else "")
        )
    if kp.shape[0] * kp.shape[1] > MAX_KEYPOINTS:
        raise ValueError(
            f"{path}: {kp.shape[0]} frames x {kp.shape[1]} joints, over the limit of "
            f"{MAX_KEYPOINTS} keypoints"
        )
    if kp.shape[-1] == 3:
        conf = kp[..., 2] if conf is None else conf
        kp = kp[..., :2]
    if conf is not None and conf.shape != kp.shape[:2]:
        raise ValueError(
            f"{path}: confidence must have shape (T, J) = {kp.shape[:2]}, got {conf.shape}"
        )
    return np.ascontiguousarray(kp), conf


def _numbers(value: object, path: Path, what: str) -> np.ndarray:
    """Nested lists or an array as float64 (``None`` -> NaN)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {what} must be numbers in equal-length rows ({err})") from None
    return arr


# ---------------------------------------------------------------- npz
def _member(zf: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    info = zf.getinfo(f"{name}.npy")
    if info.file_size > MAX_FILE_BYTES:
        raise ValueError(
            f"{path}: array {name!r} is {info.file_size} bytes, over the limit of {MAX_FILE_BYTES}"
        )
    with zf.open(info) as member:  # the header is checked against the bytes present first
        arr = read_npy_stream(member, f"{path}[{name!r}]", info.file_size, allow_pickle=False)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{path}: array {name!r} must hold numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _read_npz(path: Path, num_joints: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")]
            if "keypoints" not in names:
                raise ValueError(
                    f"{path}: expected an array 'keypoints' (T, J, 2) or (T, J, 3), found {names}"
                )
            conf_name = next((k for k in _CONFIDENCE_KEYS if k in names), None)
            conf = None if conf_name is None else _member(zf, conf_name, path)
            return _member(zf, "keypoints", path), conf
    # zipfile raises NotImplementedError for a member of an unsupported compression
    # method and RuntimeError for an encrypted one: damaged or foreign files, not bugs
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError,
            ValueError) as err:  # fmt: skip
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable npz file of numeric arrays ({err})") from None


# ---------------------------------------------------------------- JSON
def _triplets(flat: object, path: Path, where: str) -> np.ndarray:
    """A COCO flat ``[x, y, v, ...]`` list -> (J, 3); an empty one -> (0, 3)."""
    arr = _numbers(flat, path, f"{where} keypoints")
    if arr.ndim == 1 and arr.size % 3 == 0:
        return arr.reshape(-1, 3)
    if arr.ndim == 2 and arr.shape[1] in (2, 3):
        return arr if arr.shape[1] == 3 else np.concatenate([arr, np.ones((len(arr), 1))], 1)
    raise ValueError(
        f"{path}: {where} keypoints must be a flat [x1, y1, v1, ...] list (a multiple of 3 "
        f"numbers) or [[x, y], ...] / [[x, y, c], ...], got shape {arr.shape}"
    )


def _frames(frames: list, path: Path, num_joints: int | None) -> np.ndarray:
    """Per-frame (J, 3) arrays (empty = no detection) -> (T, J, 3), NaN where missed."""
    sizes = {len(f) for f in frames if len(f)}
    if len(sizes) > 1:
        raise ValueError(f"{path}: frames hold different numbers of keypoints: {sorted(sizes)}")
    j = sizes.pop() if sizes else num_joints
    if j is None:
        raise ValueError(f"{path}: no frame holds keypoints")
    out = np.full((len(frames), j, 3), np.nan)
    for t, f in enumerate(frames):
        if len(f):
            out[t] = f
    out[np.isnan(out[..., :2]).any(-1), 2] = 0.0
    return out


def _read_json(path: Path, num_joints: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({type(err).__name__}: {err})") from None
    if isinstance(data, dict) and "keypoints" in data and isinstance(data["keypoints"], list):
        frames = [_triplets(f, path, f"frame {t}") for t, f in enumerate(data["keypoints"])]
        kp = _frames(frames, path, num_joints)
        key = next((k for k in _CONFIDENCE_KEYS if k in data), None)
        return kp, None if key is None else _numbers(data[key], path, key)
    if not isinstance(data, list) or not all(d is None or isinstance(d, dict) for d in data):
        raise ValueError(
            f"{path}: expected a COCO-style list of per-frame objects with 'keypoints' "
            "[x1, y1, v1, ...], or an object {'keypoints': [...], 'confidence': [...]}"
        )
    rows = [d or {} for d in data]
    if rows and all("image_id" in d for d in rows):
        best: dict = {}
        for d in rows:
            score = d.get("score", 0.0)
            if d["image_id"] not in best or score > best[d["image_id"]].get("score", 0.0):
                best[d["image_id"]] = d
        try:
            rows = [best[k] for k in sorted(best)]
        except TypeError:
            raise ValueError(f"{path}: image_id values must be comparable (all numbers)") from None
    frames = [_triplets(d.get("keypoints") or [], path, f"frame {t}") for t, d in enumerate(rows)]
    return _frames(frames, path, num_joints), None


# ---------------------------------------------------------------- CSV
def _read_csv(path: Path, num_joints: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    if num_joints is None:
        raise ValueError(f"{path}: reading a CSV file needs its layout (layout=)")
    widths = (2 * num_joints, 3 * num_joints)
    rows: list[np.ndarray] = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for n, row in enumerate(csv.reader(fh), 1):
                if not row:
                    continue
                try:
                    values = [float(c) if c.strip() else math.nan for c in row]
                except ValueError as err:
                    if n == 1:  # a header of column names
                        continue
                    raise ValueError(f"{path}: row {n}: {err}") from None
                if len(values) not in widths or (rows and len(values) != rows[0].size):
                    raise ValueError(
                        f"{path}: row {n} has {len(values)} columns; expected {widths[1]} (x0, "
                        f"y0, c0, x1, ...) or {widths[0]} (x0, y0, x1, ...) in every row for "
                        f"{num_joints} joints"
                    )
                rows.append(np.asarray(values))
    except (UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path}: not a readable CSV file ({err})") from None
    per_joint = rows[0].size // num_joints if rows else 2
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), num_joints, per_joint), None


# ---------------------------------------------------------------- output
def write_poses(
    path: str | os.PathLike,
    pose3d: np.ndarray,
    valid: np.ndarray,
    joint_names: tuple[str, ...] | list[str],
) -> Path:
    """Write lifted poses as npz or JSON (by the suffix of ``path``).

    Args:
        path: ``.npz`` (arrays ``pose3d`` (T, 15, 3) float32, ``valid`` (T,)
            bool, ``joint_names`` (15,) str) or ``.json`` (``{"joint_names":
            [...], "valid": [...], "pose3d": [frame, ...]}``, each frame a list
            of [x, y, z] in metres rounded to 0.1 mm, ``null`` for a NaN frame).
        pose3d: (T, J, 3) poses.
        valid: (T,) True for frames lifted from their own keypoints.
        joint_names: The J joint names.

    Returns:
        The path written.
    """
    path = Path(path)
    pose3d, valid = np.asarray(pose3d, dtype=np.float32), np.asarray(valid, dtype=bool)
    if path.suffix.lower() == ".npz":
        np.savez(path, pose3d=pose3d, valid=valid, joint_names=np.asarray(joint_names, dtype=str))
    elif path.suffix.lower() == ".json":
        frames = [
            np.round(p.astype(np.float64), 4).tolist() if np.isfinite(p).all() else None
            for p in pose3d
        ]
        doc = {"joint_names": list(joint_names), "valid": valid.tolist(), "pose3d": frames}
        path.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
    else:
        raise ValueError(f"{path}: the output must be a .npz or .json file")
    return path
