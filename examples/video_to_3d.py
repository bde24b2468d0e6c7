"""A real video to 3D poses: MediaPipe Pose finds 2D keypoints, unihpr.lift lifts them.

Usage::

    pip download --no-deps sports2d -d /tmp/sports2d      # a BSD-3 demo video, 230 frames
    unzip -o /tmp/sports2d/sports2d-*.whl 'Sports2D/Demo/demo.mp4' -d /tmp/sports2d
    python examples/video_to_3d.py /tmp/sports2d/Sports2D/Demo/demo.mp4 -o video_to_3d.png

Any video works. The detector is ``mediapipe==0.10.21`` (Apache-2.0), whose legacy
``mp.solutions.pose`` runs the pose models shipped inside its wheel (no download
at run time; ``model_complexity=1``, the "full" model; 2 would download). It
pins ``numpy<2``, so install it in a virtual environment of its own::

    python -m venv venv-mp && venv-mp/bin/pip install torch==2.13.0 mediapipe==0.10.21 \\
        matplotlib && venv-mp/bin/pip install unihpr

The ``sports2d`` demo video is (c) 2022 perfanalytics, BSD-3-Clause (the licence
file is in the same wheel); it is not shipped with unihpr.

Writes a PNG: a few video frames with their 2D keypoints above the lifted 3D
skeletons (a fixed viewpoint; frames MediaPipe missed are marked, ``lift``
fills them from their neighbours), and a strip plot of the wrists' and ankles'
lifted depth over the whole video. It prints what can be said without ground
truth about ``lift``'s output and MediaPipe's own 3D (``pose_world_landmarks``):
frames returned, bone-length stability over time, and jitter. With
``--save-keypoints`` it also writes the detections as an npz that
``unihpr lift`` reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from unihpr.data import HUMANOID15
from unihpr.data.mapping import map_joints, map_visibility
from unihpr.inference import DEFAULT_LIFT_MODEL, lift, to_humanoid15

BONES = [(j, p) for j, p in enumerate(HUMANOID15.parents) if p >= 0]
TRACKS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")


def detect(video: Path, max_frames: int) -> dict[str, np.ndarray]:
    """MediaPipe Pose on every frame: pixels (T, 33, 2), visibility (T, 33), world (T, 33, 3).

    A frame without a person is NaN with visibility 0. ``thumbs`` keeps
    downscaled RGB frames for the figure.
    """
    import cv2
    import mediapipe as mp

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise SystemExit(f"error: {video}: not a readable video")
    kp, vis, world, thumbs = [], [], [], []
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1) as pose:
        while len(kp) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            result = pose.process(rgb)
            thumbs.append(cv2.resize(rgb, (w // 4, h // 4), interpolation=cv2.INTER_AREA))
            if result.pose_landmarks is None:
                kp.append(np.full((33, 2), np.nan))
                vis.append(np.zeros(33))
                world.append(np.full((33, 3), np.nan))
                continue
            lms = result.pose_landmarks.landmark
            kp.append([(lm.x * w, lm.y * h) for lm in lms])
            vis.append([lm.visibility for lm in lms])
            world.append([(lm.x, lm.y, lm.z) for lm in result.pose_world_landmarks.landmark])
    return {
        "keypoints": np.asarray(kp, dtype=np.float64),
        "confidence": np.asarray(vis, dtype=np.float64),
        "world": np.asarray(world, dtype=np.float64),
        "thumbs": np.asarray(thumbs),
        "fps": np.float64(capture.get(cv2.CAP_PROP_FPS) or 30.0),
    }


def motion_stats(pose3d: np.ndarray, fps: float) -> dict[str, float]:
    """What a sequence of 3D poses (T, 15, 3) shows without ground truth.

    ``frames``: the fraction of frames with a pose. ``bone_cv_pct``: the median
    over the 14 bones of each bone's length variation over time (std / mean,
    %; a rigid body keeps it at 0). ``accel_mm_s2``: the mean magnitude of the
    root-relative joints' acceleration (second differences of consecutive
    frames), in mm/s²: jitter and real motion together. ``mean_bone_mm``: the
    mean bone length, the body size that scales the acceleration.
    """
    ok = np.isfinite(pose3d).all(axis=(1, 2))
    rel = pose3d - pose3d[:, HUMANOID15.root : HUMANOID15.root + 1]
    lengths = np.linalg.norm(
        rel[ok][:, [j for j, _ in BONES]] - rel[ok][:, [p for _, p in BONES]], axis=-1
    )
    acc = rel[2:] - 2 * rel[1:-1] + rel[:-2]
    acc = np.linalg.norm(acc[ok[2:] & ok[1:-1] & ok[:-2]], axis=-1)
    return {
        "frames": float(ok.mean()),
        "bone_cv_pct": float(np.median(100 * lengths.std(0) / lengths.mean(0))),
        "accel_mm_s2": float(1000 * acc.mean() * fps**2),
        "mean_bone_mm": float(1000 * lengths.mean()),
    }


def figure(path: Path, det: dict, pose3d: np.ndarray, valid: np.ndarray, shown: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pose2d, vis2d = to_humanoid15(det["keypoints"], "mediapipe33", det["confidence"])
    fig = plt.figure(figsize=(12, 7.6), dpi=72)
    grid = fig.add_gridspec(3, len(shown), height_ratios=[1.0, 1.15, 0.8])
    lifted = np.flatnonzero(valid)
    for col, t in enumerate(shown):
        ax = fig.add_subplot(grid[0, col])
        # crop around the person: its own keypoints, or the nearest lifted frame's when missed
        near = t if valid[t] else lifted[np.abs(lifted - t).argmin()]
        xy = pose2d[near][vis2d[near]] / 4  # the thumbnails are a quarter of the frame
        (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
        half = 0.65 * max(x1 - x0, y1 - y0) + 4
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ax.imshow(det["thumbs"][t])
        ax.set(xlim=(cx - half, cx + half), ylim=(cy + half, cy - half))
        for j, p in BONES:
            if vis2d[t, j] and vis2d[t, p]:
                ax.plot(*(pose2d[t, [j, p]] / 4).T, color="tab:orange", lw=2)
        detected = np.isfinite(det["keypoints"][t]).all()
        ax.set_title(f"frame {t}" + ("" if detected else ": no detection"), fontsize=10)
        ax.axis("off")
        ax3 = fig.add_subplot(grid[1, col], projection="3d")
        p3 = pose3d[t]
        color = "tab:blue" if valid[t] else "tab:red"
        for j, p in BONES:
            # camera frame (x right, y down, z away) drawn with up = -y, depth = z
            ax3.plot(p3[[j, p], 0], p3[[j, p], 2], -p3[[j, p], 1], color=color, lw=2)
        ax3.set(
            xlim=(-0.5, 0.5),
            ylim=(-0.5, 0.5),
            zlim=(-0.8, 0.6),
            xticklabels=[],
            yticklabels=[],
            zticklabels=[],
        )
        ax3.view_init(elev=12, azim=-60)
        ax3.set_title("lifted" if valid[t] else "filled from neighbours", fontsize=10, color=color)
    ax = fig.add_subplot(grid[2, :])
    time = np.arange(len(pose3d)) / det["fps"]
    for name in TRACKS:
        ax.plot(time, pose3d[:, HUMANOID15.index(name), 2], lw=1.2, label=name)
    for t in np.flatnonzero(~valid):
        ax.axvspan(
            (t - 0.5) / det["fps"], (t + 0.5) / det["fps"], color="tab:red", alpha=0.25, lw=0
        )
    ax.set(xlabel="time (s)", ylabel="depth rel. to pelvis (m)", xlim=(time[0], time[-1]))
    ax.legend(loc="upper right", ncol=4, fontsize=8)
    ax.set_title(
        "lifted depth of wrists and ankles; red: frames without a detection, filled", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="a video file (see the module doc for one)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("video_to_3d.png"), help="the figure (PNG)"
    )
    parser.add_argument(
        "--frames", type=int, nargs="+", help="frames shown (default: 3 + 1 missed)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=100_000, help="read at most this many frames"
    )
    parser.add_argument("--model", default=DEFAULT_LIFT_MODEL, help="lift's model: name or folder")
    parser.add_argument("--save-keypoints", type=Path, help="also write the detections (npz)")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        parser.error(f"no such video: {args.video}")

    det = detect(args.video, args.max_frames)
    pose3d, valid = lift(
        det["keypoints"], "mediapipe33", det["confidence"], model=args.model, return_valid=True
    )
    if args.save_keypoints:
        np.savez(args.save_keypoints, keypoints=det["keypoints"], confidence=det["confidence"])
    # MediaPipe's own 3D in the same 15 joints (root = mean of its hips, as for lift)
    world = det["world"]
    seen = map_visibility(np.isfinite(world).all(-1), "mediapipe33", "humanoid15")
    world15 = np.where(
        seen[..., None], map_joints(np.nan_to_num(world), "mediapipe33", "humanoid15"), np.nan
    )
    fps = float(det["fps"])
    report = {
        "video_frames": len(pose3d),
        "frames_without_detection": int((~np.isfinite(det["keypoints"]).all((1, 2))).sum()),
        "lift": motion_stats(pose3d, fps),
        "lift_lifted_frames_only": motion_stats(
            np.where(valid[:, None, None], pose3d, np.nan), fps
        ),
        "mediapipe_world": motion_stats(world15, fps),
    }
    print(json.dumps(report, indent=2))
    # default: three lifted frames and one missed between lifted ones (filled)
    lifted, missed = np.flatnonzero(valid), np.flatnonzero(~valid)
    shown = args.frames
    if shown is None and lifted.size:
        inner = missed[(missed > lifted[0]) & (missed < lifted[-1])]
        shown = sorted(
            {*lifted[(np.array([0.2, 0.5, 0.93]) * (lifted.size - 1)).astype(int)], *inner[:1]}
        )
    if not shown:
        raise SystemExit("error: MediaPipe found nobody in this video")
    figure(args.output, det, pose3d, valid, shown)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
