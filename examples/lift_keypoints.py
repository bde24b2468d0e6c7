"""Lift 2D keypoints saved in a file to 3D poses with unihpr.lift.

Usage::

    python examples/lift_keypoints.py landmarks.json --layout mediapipe33 --image-size 1920 1080
    python examples/lift_keypoints.py detections.npz --layout coco17

Input files (one person; one entry per video frame):

* ``.npz`` with ``keypoints`` (T, J, 2) or (J, 2) and optionally
  ``confidence`` (T, J) or (J,) (MediaPipe's visibility, a detector's scores);
* ``.json`` holding either ``{"keypoints": [[[x, y], ...], ...], "confidence":
  [[c, ...], ...]}`` (same shapes, ``confidence`` optional) or MediaPipe's
  landmarks as a list with one entry per frame, each a list of 33 objects
  ``{"x": ..., "y": ..., "z": ..., "visibility": ...}`` (``null`` or ``[]`` for a
  frame without a person; ``z`` is not used).

Coordinates are pixels, or MediaPipe's normalised [0, 1] image coordinates
with ``--image-size W H`` (the aspect ratio matters, the size does not).

Writes ``OUTPUT.npz`` (default: beside the input, ``<name>_3d.npz``) with
``pose3d`` (N, 15, 3) root-relative metres in the camera frame (x right, y
down, z forward), ``frames`` (N,) the input frame of each pose, ``keypoints2d``
(N, 15, 2) the humanoid joints the model saw (NaN where masked), ``visible``
(N, 15), ``joint_names`` (15,) and ``skipped`` (frames without enough visible
joints); and a PNG of a few frames' 2D input beside their 3D pose.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unihpr.data import HUMANOID15
from unihpr.inference import DEFAULT_LIFT_MODEL, LIFT_LAYOUTS, lift, to_humanoid15

MAX_JSON_BYTES = 512 * 2**20
MAX_FIGURE_FRAMES = 16  # what unihpr.viz.plot_pose_comparison draws at most


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("input", type=Path, help="2D keypoints: .npz or .json (see the module doc)")
    p.add_argument("--layout", required=True, choices=LIFT_LAYOUTS,
                   help="keypoint layout of the file (MediaPipe Pose: mediapipe33)")  # fmt: skip
    p.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"),
                   help="the coordinates are normalised to [0, 1]: multiply x by W and y by H")  # fmt: skip
    p.add_argument("--model", default=DEFAULT_LIFT_MODEL,
                   help="registered model name or a folder written by save_pretrained")  # fmt: skip
    p.add_argument("--confidence-threshold", type=float, default=0.3,
                   help="keypoints with a lower confidence are masked")  # fmt: skip
    p.add_argument("--min-visible", type=int, default=8,
                   help="frames with fewer visible humanoid joints are skipped")  # fmt: skip
    p.add_argument("--output", type=Path, help="output .npz (default: INPUT_3d.npz beside it)")
    p.add_argument("--figure", type=Path, help="output PNG (default: INPUT_3d.png beside it)")
    p.add_argument("--figure-frames", type=int, default=4,
                   help="frames drawn in the figure, evenly spaced (0: no figure)")  # fmt: skip
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: where the model is)")
    p.add_argument("--batch-size", type=int, default=1024, help="frames per forward pass")
    return p


def _mediapipe_frames(frames: list, path: Path) -> tuple[np.ndarray, np.ndarray | None, list]:
    """MediaPipe landmark lists -> keypoints (T, 33, 2), visibility (T, 33), empty frames."""
    xy, vis, empty = [], [], []
    for t, frame in enumerate(frames):
        if not frame:
            empty.append(t)
            continue
        if not isinstance(frame, list) or not all(isinstance(lm, dict) for lm in frame):
            raise ValueError(f"{path}: frame {t} must be a list of landmark objects")
        try:
            xy.append([[float(lm["x"]), float(lm["y"])] for lm in frame])
            vis.append(
                [float(lm["visibility"]) for lm in frame] if "visibility" in frame[0] else None
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: frame {t}: landmarks need numeric x and y ({err})") from None
    if not xy:
        raise ValueError(f"{path}: no frame holds landmarks")
    if len({len(f) for f in xy}) != 1:
        raise ValueError(f"{path}: frames hold different numbers of landmarks")
    conf = None if any(v is None for v in vis) else np.asarray(vis, dtype=np.float64)
    return np.asarray(xy, dtype=np.float64), conf, empty


def read_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Read a keypoints file.

    Returns:
        ``(keypoints (T, J, 2), confidence (T, J) or None, frame index of each row (T,))``.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "keypoints" not in z.files:
                raise ValueError(f"{path}: expected an array 'keypoints', found {z.files}")
            kp = np.asarray(z["keypoints"], dtype=np.float64)
            conf = np.asarray(z["confidence"], dtype=np.float64) if "confidence" in z else None
        frames = None
    elif suffix == ".json":
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ValueError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if isinstance(data, list):
            kp, conf, empty = _mediapipe_frames(data, path)
            frames = np.setdiff1d(np.arange(len(data)), empty)
        elif isinstance(data, dict) and "keypoints" in data:
            try:
                kp = np.asarray(data["keypoints"], dtype=np.float64)
                conf = data.get("confidence")
                conf = None if conf is None else np.asarray(conf, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{path}: keypoints/confidence must be numeric arrays ({err})"
                ) from None
            frames = None
        else:
            raise ValueError(
                f"{path}: expected {{'keypoints': ..., 'confidence': ...}} or a list of "
                "MediaPipe landmark lists (one per frame)"
            )
    else:
        raise ValueError(f"{path}: expected a .npz or .json file, got {suffix or 'no suffix'!r}")
    if kp.ndim == 2:  # one frame
        kp = kp[None]
        conf = None if conf is None else conf[None]
    if frames is None:
        frames = np.arange(len(kp))
    return kp, conf, frames


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.figure_frames <= MAX_FIGURE_FRAMES:
        parser.error(f"--figure-frames must be in [0, {MAX_FIGURE_FRAMES}]")
    try:
        return run(args)
    except (OSError, ValueError) as err:  # unreadable files, bad shapes, a missing model
        print(f"error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    """Read, lift, write; returns the exit status."""
    kp, conf, frames = read_keypoints(args.input)
    if args.image_size is not None:
        kp = kp * np.asarray(args.image_size)
    elif np.nanmax(np.abs(kp)) <= 1.5:
        print("warning: the coordinates look normalised to [0, 1]; pass --image-size W H "
              "so that x and y get the image's aspect ratio", file=sys.stderr)  # fmt: skip

    # frames without enough visible joints are skipped, not fatal: a video has some
    pose2d, visible = to_humanoid15(kp, args.layout, conf,
                                    confidence_threshold=args.confidence_threshold)  # fmt: skip
    keep = visible.sum(-1) >= args.min_visible
    skipped = frames[~keep]
    if skipped.size:
        print(f"skipping {skipped.size} frame(s) with fewer than {args.min_visible} visible "
              f"joints: {skipped[:20].tolist()}{' ...' if skipped.size > 20 else ''}")  # fmt: skip
    if not keep.any():
        print("error: no frame has enough visible joints", file=sys.stderr)
        return 2
    pose3d = lift(
        kp[keep], args.layout, None if conf is None else conf[keep], args.model,
        confidence_threshold=args.confidence_threshold, min_visible=args.min_visible,
        device=args.device, batch_size=args.batch_size,
    )  # fmt: skip

    stem = args.input.with_name(args.input.stem + "_3d")
    out = args.output or stem.with_suffix(".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out, pose3d=pose3d.astype(np.float32), frames=frames[keep],
        keypoints2d=pose2d[keep].astype(np.float32), visible=visible[keep],
        joint_names=np.asarray(HUMANOID15.joint_names), skipped=skipped,
    )  # fmt: skip
    print(f"wrote {len(pose3d)} poses (15 joints: {', '.join(HUMANOID15.joint_names)}) to {out}")

    if args.figure_frames > 0:
        from unihpr.viz import plot_pose_comparison

        show = np.unique(np.linspace(0, len(pose3d) - 1, args.figure_frames).round().astype(int))
        figure = plot_pose_comparison(
            args.figure or stem.with_suffix(".png"), HUMANOID15,
            pred3d=pose3d[show], true2d=pose2d[keep][show],
            labels=[f"frame {f}" for f in frames[keep][show]],
            title=f"{args.input.name}: 2D input ({args.layout} as humanoid15) and lifted 3D",
        )  # fmt: skip
        print(f"wrote {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
