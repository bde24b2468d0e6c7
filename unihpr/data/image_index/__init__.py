"""Image index for the image branch: one JSON line per image.

Each line holds ``image`` (path relative to the index's image root),
``pose2d`` (J x 2 pixels), ``pose3d`` (J x 3 camera metres, root-relative),
``camera`` (id), ``subject``, ``action`` (normalised), ``action_raw`` and
``frame``. [`build_h36m_image_index`][] writes one from extracted Human3.6M
frames plus the VideoPose3D npz files; [`ImageIndexDataset`][] loads crops
around the keypoints' box (needs Pillow, the ``image`` extra).

Build one with ``unihpr build-image-index FRAMES_ROOT DATA_3D DATA_2D OUT.jsonl``
(``--help`` lists the options).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from unihpr._optional import require
from unihpr._validate import check_int, check_real
from unihpr.data._arrays import apply_nonfinite_policy
from unihpr.data._io import check_file
from unihpr.data.h36m import (
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    load_h36m_2d,
    load_h36m_3d,
    prepare_h36m,
)
from unihpr.geometry import bbox_from_keypoints

__all__ = ["ImageIndexDataset", "build_h36m_image_index", "read_image_index"]

DEFAULT_PATTERN = "{subject}/{action}.{camera}/{number:06d}.jpg"
_FIELDS = ("image", "pose2d", "pose3d", "subject", "action", "frame")
# A record of 17 joints is about 1 KB; a longer line is not an index line.
_MAX_LINE = 1 << 20


def build_h36m_image_index(
    frames_root: str | os.PathLike,
    data_3d: str | os.PathLike,
    data_2d: str | os.PathLike,
    out: str | os.PathLike,
    *,
    subjects: Sequence[str] = H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS,
    stride: int = 1,
    pattern: str = DEFAULT_PATTERN,
    first_number: int = 1,
    skip_missing: bool = True,
    nonfinite: str = "raise",
) -> dict[str, int]:
    """Write a JSON-lines image index for extracted Human3.6M frames.

    Args:
        frames_root: Folder with the frames, e.g. ``ROOT/S1/Directions 1.54138969/000001.jpg``.
        data_3d: ``data_3d_h36m.npz``.
        data_2d: ``data_2d_h36m_gt.npz`` (ground-truth 2D, for boxes and targets).
        out: Output ``.jsonl`` path.
        subjects: Subjects to index.
        stride: Every ``stride``-th mocap frame (50 gives the paper's 1 fps).
        pattern: Relative image path; fields ``subject``, ``action`` (raw name
            as in the npz), ``camera`` (id), ``frame`` (0-based), ``number``
            (``frame + first_number``).
        first_number: File number of mocap frame 0.
        skip_missing: Skip samples whose image file does not exist (else raise).
        nonfinite: Samples with NaN or inf poses: ``"raise"`` or ``"mask"``
            (left out with a warning), as in [`Human36M`][unihpr.data.Human36M].

    Returns:
        ``{"written": n, "missing": m, "nonfinite": k}``.
    """
    root = Path(frames_root)
    if not root.is_dir():
        raise FileNotFoundError(f"frames_root is not a folder: {root}")
    check_int("first_number", first_number)
    p3 = load_h36m_3d(data_3d, allow_nonfinite=True)  # reported per sample below
    p2 = load_h36m_2d(data_2d, allow_nonfinite=True)[0]
    a = prepare_h36m(p3, p2, subjects, stride=stride, source=str(data_2d))
    a, masked = apply_nonfinite_policy(
        a, nonfinite, {"pose3d": str(data_3d), "pose2d": str(data_2d)}
    )
    written = missing = 0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fh:
        for i in range(len(a["pose3d"])):
            frame = int(a["frame"][i])
            rel = pattern.format(
                subject=a["subject"][i], action=a["action_raw"][i], camera=a["camera"][i],
                frame=frame, number=frame + first_number,
            )  # fmt: skip
            if not (root / rel).is_file():
                if not skip_missing:
                    raise FileNotFoundError(f"frame image not found: {root / rel}")
                missing += 1
                continue
            rec = {
                "image": rel,
                "pose2d": np.round(a["pose2d"][i].astype(np.float64), 3).tolist(),
                "pose3d": np.round(a["pose3d"][i].astype(np.float64), 6).tolist(),
                "camera": str(a["camera"][i]),
                "subject": str(a["subject"][i]),
                "action": str(a["action"][i]),
                "action_raw": str(a["action_raw"][i]),
                "frame": frame,
            }
            fh.write(json.dumps(rec, allow_nan=False) + "\n")
            written += 1
    return {"written": written, "missing": missing, "nonfinite": masked}


def read_image_index(path: str | os.PathLike) -> list[dict]:
    """Parse and validate an index file; errors name the file, line and field."""
    p = check_file(path, "image index (.jsonl)")
    records = []
    with open(p, "rb") as fh:
        for n, line in enumerate(iter(lambda: fh.readline(_MAX_LINE + 1), b""), 1):
            if len(line) > _MAX_LINE:
                raise ValueError(f"{p}:{n}: the line is longer than {_MAX_LINE >> 20} MiB")
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except RecursionError:
                raise ValueError(f"{p}:{n}: not valid JSON (it nests too deeply)") from None
            except ValueError as err:  # JSON or UTF-8
                raise ValueError(f"{p}:{n}: not valid JSON ({err})") from err
            if not isinstance(rec, dict):
                raise ValueError(f"{p}:{n}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in _FIELDS if k not in rec]
            if missing:
                raise ValueError(f"{p}:{n}: missing fields {missing}")
            if not isinstance(rec["pose3d"], list) or not rec["pose3d"]:
                raise ValueError(f"{p}:{n}: pose3d must be a non-empty list of [x, y, z]")
            j = len(rec["pose3d"])
            for key, shape in (("pose2d", (j, 2)), ("pose3d", (j, 3))):
                try:
                    value = np.asarray(rec[key], dtype=np.float64)
                except (TypeError, ValueError) as err:
                    raise ValueError(f"{p}:{n}: {key} must hold numbers ({err})") from err
                if value.shape != shape:
                    raise ValueError(f"{p}:{n}: {key} has shape {value.shape}, expected {shape}")
                if not np.isfinite(value).all():
                    raise ValueError(f"{p}:{n}: {key} holds NaN or inf")
            records.append(rec)
    if not records:
        raise ValueError(f"{p}: the index is empty")
    return records


class ImageIndexDataset(Dataset):
    """Image crops + 2D/3D poses from an image index.

    The crop is the box of the record's 2D keypoints (the one box rule,
    [`bbox_from_keypoints`][unihpr.geometry.bbox_from_keypoints]) widened to
    the output aspect ratio and scaled by ``scale``, cut from the image (zero
    padding outside) and resized.

    Args:
        index: Path of the ``.jsonl`` index.
        image_root: Folder the ``image`` paths are relative to (default: the
            index's folder).
        image_size: Output (H, W); the paper uses (256, 192).
        scale: Enlargement of the box: the default 1.3 leaves 15% of the
            keypoints' extent free on every side, room for the head top,
            hands and feet beyond their joints.

    Samples: ``image`` (3, H, W) float32 in [0, 1]; ``pose2d`` (J, 2) in crop
    pixels; ``pose3d`` (J, 3); ``subject``, ``action``, ``frame``, ``index``.
    """

    def __init__(
        self,
        index: str | os.PathLike,
        image_root: str | os.PathLike | None = None,
        *,
        image_size: tuple[int, int] = (256, 192),
        scale: float = 1.3,
    ) -> None:
        if not isinstance(image_size, (tuple, list)) or len(image_size) != 2:
            raise TypeError(f"image_size must be a pair (H, W), got {image_size!r}")
        self.image_size = tuple(check_int("image_size", s, low=1) for s in image_size)
        self.scale = check_real("scale", scale, low=0.0, low_open=True)
        self.records = read_image_index(index)
        self.image_root = Path(image_root) if image_root else Path(index).parent
        require("PIL.Image", "image")  # fail at construction, not in a worker

    def __len__(self) -> int:
        return len(self.records)

    def crop_box(self, pose2d: Sequence[Sequence[float]]) -> np.ndarray:
        """The crop (x0, y0, x1, y1) in image pixels for a record's ``pose2d`` (J, 2)."""
        h, w = self.image_size
        box = bbox_from_keypoints(torch.as_tensor(pose2d, dtype=torch.float64))
        x0, y0, x1, y1 = box.tolist()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        if bw / bh > w / h:
            bh = bw * h / w
        else:
            bw = bh * w / h
        bw, bh = bw * self.scale, bh * self.scale
        return np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        i = int(index) % len(self)
        rec = self.records[i]
        pil = require("PIL.Image", "image")
        path = self.image_root / rec["image"]
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        h, w = self.image_size
        box = self.crop_box(rec["pose2d"])
        with pil.open(path) as img:
            crop = img.convert("RGB").transform(
                (w, h), pil.Transform.EXTENT, tuple(box.tolist()), resample=pil.Resampling.BILINEAR
            )
        image = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)
        s = np.array([w / (box[2] - box[0]), h / (box[3] - box[1])])
        pose2d = (np.asarray(rec["pose2d"], dtype=np.float64) - box[:2]) * s
        return {
            "image": image.contiguous(),
            "pose2d": torch.tensor(pose2d, dtype=torch.float32),
            "pose3d": torch.tensor(rec["pose3d"], dtype=torch.float32),
            "subject": str(rec["subject"]),
            "action": str(rec["action"]),
            "frame": int(rec["frame"]),
            "index": i,
        }


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the arguments of [`build_h36m_image_index`][] to ``parser``.

    The arguments of ``unihpr build-image-index``.
    """
    subjects = list(H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS)
    fields = "{subject}, {action}, {camera}, {frame}, {number}"
    parser.add_argument("frames_root", help="folder of the frames; index paths are relative to it")
    parser.add_argument("data_3d", help="data_3d_h36m.npz (VideoPose3D format)")
    parser.add_argument("data_2d", help="data_2d_h36m_gt.npz: ground-truth 2D keypoints")
    parser.add_argument("out", help="output .jsonl file")
    parser.add_argument("--subjects", nargs="+", default=subjects, help="default: %(default)s")
    parser.add_argument("--stride", type=int, default=1, help="every STRIDE-th frame (50: 1 fps)")
    parser.add_argument(
        "--pattern", default=DEFAULT_PATTERN, help=f"image path with {fields}; default %(default)s"
    )
    parser.add_argument("--first-number", type=int, default=1, help="file number of frame 0")
    parser.add_argument("--strict", action="store_true", help="fail on a missing image")
    parser.add_argument(
        "--mask-nonfinite", action="store_true", help="leave out poses with NaN/inf (else fail)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the index from parsed [`add_arguments`][] arguments; prints a summary."""
    stats = build_h36m_image_index(
        args.frames_root, args.data_3d, args.data_2d, args.out, subjects=args.subjects,
        stride=args.stride, pattern=args.pattern, first_number=args.first_number,
        skip_missing=not args.strict,
        nonfinite="mask" if args.mask_nonfinite else "raise",
    )  # fmt: skip
    print(
        f"wrote {stats['written']} records to {args.out} ({stats['missing']} images missing, "
        f"{stats['nonfinite']} samples with NaN/inf poses left out)"
    )
    return 0
