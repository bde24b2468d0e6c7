"""DeepMimic humanoid motion capture: real human motion bundled with pybullet.

The ``pybullet`` wheel ships 15 motion-capture clips of the DeepMimic
humanoid (``pybullet_data/data/motions/humanoid3d_*.txt``, 1,620 frames) and
the humanoid itself (``pybullet_data/humanoid/humanoid.urdf``). This module
turns them into a small image / 2D / 3D pose dataset that needs no download:

* forward kinematics (numpy) of the URDF at ``globalScaling=0.25`` gives the 15
  joints of `HUMANOID15` in metres (y-up world);
* seeded virtual pinhole cameras (1000x1000 sensor, f 1000-1300 px,
  3.5-6 m away, -5..25 degrees elevation, any azimuth) look at the subject;
* pybullet's TinyRenderer draws an RGB crop around the projected body with a
  projection matrix built from the same intrinsics, so the image, the 2D
  joints and the 3D joints agree.

Frame layout (44 numbers, checked against pybullet_envs' deep_mimic
``humanoid_pose_interpolator``): duration, root position (3), root rotation
(w, x, y, z), then local rotations chest (4), neck (4), right hip (4), right
knee (1 angle), right ankle (4), right shoulder (4), right elbow (1), left hip
(4), left knee (1), left ankle (4), left shoulder (4), left elbow (1).

Pixel convention of the crops: pixel column i covers x in [i, i+1).
Requires the ``demo`` extra (``pybullet``) to build; a built cache only needs
numpy.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from unihpr._optional import require
from unihpr._quiet import silence_c_output
from unihpr._validate import check_choice, check_int
from unihpr.data._arrays import ArrayPoseDataset
from unihpr.data._io import write_npz_atomically
from unihpr.data.cameras import quaternion_to_matrix
from unihpr.data.mocap_clip import euler_to_matrix
from unihpr.data.skeletons import HUMANOID15

__all__ = [
    "DEFAULT_TEST_CLIPS",
    "HumanoidMocap",
    "build_humanoid_mocap",
    "humanoid_forward_kinematics",
    "list_mocap_clips",
    "load_humanoid_motion",
    "load_mocap_clip",
    "look_at_camera",
    "opengl_matrices",
    "recombine_frames",
]

_VERSION = 1
FRAME_SIZE = 44
SCALE = 0.25  # globalScaling used by pybullet's DeepMimic environments
DEFAULT_TEST_CLIPS: tuple[str, ...] = ("dance_b", "getup_faceup", "kick", "walk")

# Joint origins of humanoid.urdf (unscaled), parent link, kind, slice in a frame.
# Order = pybullet link order = HUMANOID15 order.
_JOINTS: tuple[tuple[str, int, tuple[float, float, float], str, int], ...] = (
    ("root", -1, (0.0, 0.0, 0.0), "fixed", -1),
    ("chest", 0, (0.0, 0.944604, 0.0), "spherical", 8),
    ("neck", 1, (0.0, 0.895576, 0.0), "spherical", 12),
    ("right_hip", 0, (0.0, 0.0, 0.339548), "spherical", 16),
    ("right_knee", 3, (0.0, -1.686184, 0.0), "revolute", 20),
    ("right_ankle", 4, (0.0, -1.639480, 0.0), "spherical", 21),
    ("right_shoulder", 1, (-0.0962, 0.974, 0.73244), "spherical", 25),
    ("right_elbow", 6, (0.0, -1.099152, 0.0), "revolute", 29),
    ("right_wrist", 7, (0.0, -1.035788, 0.0), "fixed", -1),
    ("left_hip", 0, (0.0, 0.0, -0.339548), "spherical", 30),
    ("left_knee", 9, (0.0, -1.686184, 0.0), "revolute", 34),
    ("left_ankle", 10, (0.0, -1.639480, 0.0), "spherical", 35),
    ("left_shoulder", 1, (-0.0962, 0.974, -0.73244), "spherical", 39),
    ("left_elbow", 12, (0.0, -1.099152, 0.0), "revolute", 43),
    ("left_wrist", 13, (0.0, -1.035788, 0.0), "fixed", -1),
)
assert tuple(j[0] for j in _JOINTS) == HUMANOID15.joint_names


def _pybullet_data_path() -> Path:
    pybullet_data = require("pybullet_data", "demo")
    return Path(pybullet_data.getDataPath())


def list_mocap_clips(data_path: str | os.PathLike | None = None) -> list[str]:
    """Names of the humanoid clips (e.g. ``"walk"``) in the pybullet data folder."""
    root = Path(data_path) if data_path else _pybullet_data_path()
    files = sorted((root / "data" / "motions").glob("humanoid3d_*.txt"))
    if not files:
        raise FileNotFoundError(f"no humanoid3d_*.txt clips under {root / 'data' / 'motions'}")
    return [f.stem[len("humanoid3d_") :] for f in files]


def load_mocap_clip(clip: str, data_path: str | os.PathLike | None = None) -> np.ndarray:
    """Frames (N, 44) float64 of one clip; see the module docstring for the layout."""
    root = Path(data_path) if data_path else _pybullet_data_path()
    path = root / "data" / "motions" / f"humanoid3d_{clip}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"mocap clip not found: {path}")
    try:
        frames = np.asarray(json.loads(path.read_text())["Frames"], dtype=np.float64)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: expected JSON with 'Frames': (N, {FRAME_SIZE}) numbers") from err
    if frames.ndim != 2 or frames.shape[1] != FRAME_SIZE or len(frames) == 0:
        raise ValueError(f"{path}: 'Frames' has shape {frames.shape}, expected (N, {FRAME_SIZE})")
    return frames


def _check_test_clips(test_clips: Sequence[str], clips: list[str]) -> list[str]:
    if isinstance(test_clips, str):
        raise TypeError(f"test_clips must be a list of clip names, got the string {test_clips!r}")
    unknown = sorted(set(test_clips) - set(clips))
    if unknown:
        raise ValueError(f"unknown test_clips {unknown}; clips are {clips}")
    return clips


def load_humanoid_motion(
    split: str = "train",
    *,
    test_clips: Sequence[str] = DEFAULT_TEST_CLIPS,
    stride: int = 1,
    data_path: str | os.PathLike | None = None,
) -> tuple[np.ndarray, list[str], list[int]]:
    """World-frame joints of the clips of one split, for virtual cameras.

    Args:
        split: ``"train"`` (clips not in ``test_clips``), ``"test"`` or ``"all"``.
        test_clips: Clips of the test split.
        stride: Use every ``stride``-th frame.
        data_path: pybullet data folder (default: the installed package's).

    Returns:
        ``(motion (N, 15, 3) float64 metres, y up; clip name per frame; frame index per frame)``,
        ready for [`VirtualCameraDataset`][unihpr.data.virtual_cameras.VirtualCameraDataset]
        with ``HUMANOID15``.
    """
    check_choice("split", split, ("train", "test", "all"))
    check_int("stride", stride, low=1)
    clips = _check_test_clips(test_clips, list_mocap_clips(data_path))
    chosen = [c for c in clips if split == "all" or (c in test_clips) == (split == "test")]
    poses, names, frames = [], [], []
    for clip in chosen:
        world = humanoid_forward_kinematics(load_mocap_clip(clip, data_path))[::stride]
        poses.append(world)
        names += [clip] * len(world)
        frames += list(range(0, stride * len(world), stride))
    return np.concatenate(poses), names, frames


def humanoid_forward_kinematics(frames: np.ndarray) -> np.ndarray:
    """World joint positions (N, 15, 3) metres (y-up) of DeepMimic frames (N, 44).

    Each joint is the origin of its URDF joint frame (pybullet's link frame),
    scaled by 0.25 as in pybullet's DeepMimic environments.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != FRAME_SIZE:
        raise ValueError(f"frames must have shape (N, {FRAME_SIZE}), got {frames.shape}")
    n = frames.shape[0]
    rot = [None] * len(_JOINTS)
    pos = np.zeros((n, len(_JOINTS), 3))
    for j, (_, parent, offset, kind, k) in enumerate(_JOINTS):
        if parent < 0:
            pos[:, j] = frames[:, 1:4]
            r_parent = quaternion_to_matrix(frames[:, 4:8])
        else:
            r_parent = rot[parent]
            pos[:, j] = pos[:, parent] + r_parent @ (SCALE * np.asarray(offset))
        if kind == "spherical":
            rot[j] = r_parent @ quaternion_to_matrix(frames[:, k : k + 4])
        elif kind == "revolute":
            rot[j] = r_parent @ euler_to_matrix(frames[:, k : k + 1], "Z")
        else:
            rot[j] = r_parent
    return pos


def look_at_camera(position: np.ndarray, target: np.ndarray, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world rotation (3, 3) (columns: camera x right, y down, z forward)."""
    z = np.asarray(target, dtype=np.float64) - np.asarray(position, dtype=np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def opengl_matrices(
    rotation: np.ndarray,
    position: np.ndarray,
    intrinsics: np.ndarray,
    width: int,
    height: int,
    near: float = 0.05,
    far: float = 50.0,
) -> tuple[list[float], list[float]]:
    """pybullet view and projection matrices (column-major, 16 floats each)
    reproducing a pinhole camera: pixel column i covers [i, i+1), rows go down.

    Args:
        rotation: Camera-to-world rotation (3, 3), OpenCV axes.
        position: Camera centre (3,).
        intrinsics: K (3, 3) in pixels of a ``width`` x ``height`` image.
    """
    flip = np.diag([1.0, -1.0, -1.0])  # OpenCV camera axes -> OpenGL (y up, looking down -z)
    r_gl = flip @ rotation.T
    view = np.eye(4)
    view[:3] = np.column_stack([r_gl, -r_gl @ position])
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    proj = np.array([
        [2 * fx / width, 0.0, 1 - 2 * cx / width, 0.0],
        [0.0, 2 * fy / height, 2 * cy / height - 1, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])  # fmt: skip
    return view.T.reshape(-1).tolist(), proj.T.reshape(-1).tolist()


#: RGBA of the left / right links and of the trunk and head with ``side_colours=True``.
SIDE_COLOURS = {"left": (0.2, 0.4, 1.0, 1.0), "right": (1.0, 0.3, 0.2, 1.0),
                "centre": (0.85, 0.85, 0.85, 1.0)}  # fmt: skip


class _Renderer:
    """One pybullet DIRECT client holding the humanoid, posed frame by frame."""

    def __init__(self, data_path: Path, side_colours: bool = False) -> None:
        # pybullet prints a banner on import and "b3Warning ... urdfdom" lines
        # for this URDF from C, straight to fds 1 and 2.
        with silence_c_output():
            self.p = require("pybullet", "demo")
            self.client = self.p.connect(self.p.DIRECT)
            self.body = self.p.loadURDF(
                str(data_path / "humanoid" / "humanoid.urdf"),
                globalScaling=SCALE,
                useFixedBase=True,
                # keep URDF link order so that link j is HUMANOID15 joint j
                flags=self.p.URDF_MAINTAIN_LINK_ORDER,
                physicsClientId=self.client,
            )
        if side_colours:
            for j, name in enumerate(HUMANOID15.joint_names):
                side = name.split("_")[0] if name.startswith(("left", "right")) else "centre"
                self.p.changeVisualShape(self.body, j, rgbaColor=SIDE_COLOURS[side],
                                         physicsClientId=self.client)  # fmt: skip

    def pose(self, frame: np.ndarray) -> None:
        p, c = self.p, self.client

        def xyzw(q):
            return [q[1], q[2], q[3], q[0]]

        p.resetBasePositionAndOrientation(
            self.body, frame[1:4], xyzw(frame[4:8]), physicsClientId=c
        )
        for j, (_, _, _, kind, k) in enumerate(_JOINTS):
            if kind == "spherical":
                p.resetJointStateMultiDof(self.body, j, xyzw(frame[k : k + 4]), physicsClientId=c)
            elif kind == "revolute":
                p.resetJointStateMultiDof(self.body, j, [frame[k]], physicsClientId=c)

    def link_positions(self) -> np.ndarray:
        """World positions (15, 3) of the link frames as pybullet computes them."""
        states = self.p.getLinkStates(
            self.body, list(range(len(_JOINTS))), physicsClientId=self.client
        )
        return np.array([s[4] for s in states])

    def render(self, view, proj, size: int) -> tuple[np.ndarray, np.ndarray]:
        """RGB (size, size, 3) uint8 and a boolean body mask (size, size)."""
        _, _, rgb, _, seg = self.p.getCameraImage(
            size,
            size,
            viewMatrix=view,
            projectionMatrix=proj,
            renderer=self.p.ER_TINY_RENDERER,
            shadow=0,
            lightDirection=[1.0, 2.0, 1.5],
            physicsClientId=self.client,
        )
        rgb = np.asarray(rgb, dtype=np.uint8).reshape(size, size, 4)[..., :3]
        mask = np.asarray(seg).reshape(size, size) == self.body
        return rgb, mask

    def close(self) -> None:
        self.p.disconnect(physicsClientId=self.client)


def _sample_camera(rng: np.random.Generator, target: np.ndarray) -> tuple[np.ndarray, ...]:
    az = rng.uniform(0, 2 * np.pi)
    el = np.deg2rad(rng.uniform(-5.0, 25.0))
    dist = rng.uniform(3.5, 6.0)
    aim = target + rng.normal(scale=0.05, size=3)
    pos = aim + dist * np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    f = rng.uniform(1000.0, 1300.0)
    k = np.array([[f, 0.0, 500.0], [0.0, f, 500.0], [0.0, 0.0, 1.0]])
    return look_at_camera(pos, aim), pos, k


def _config_key(**cfg) -> str:
    blob = json.dumps({"version": _VERSION, **cfg}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """``$UNIHPR_CACHE`` or ``~/.cache/unihpr``."""
    return Path(os.environ.get("UNIHPR_CACHE", Path.home() / ".cache" / "unihpr"))


def build_humanoid_mocap(
    cache_dir: str | os.PathLike | None = None,
    *,
    image_size: int = 64,
    stride: int = 1,
    cameras_per_frame: int = 2,
    test_clips: Sequence[str] = DEFAULT_TEST_CLIPS,
    seed: int = 0,
    background: bool = True,
    side_colours: bool = False,
    recombined: int = 0,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Path]:
    """Render the dataset once into ``cache_dir`` (one npz per split).

    Args:
        cache_dir: Folder for the cache (default `default_cache_dir`).
        image_size: Side of the square RGB crops in pixels.
        stride: Use every ``stride``-th mocap frame.
        cameras_per_frame: Random cameras (views) per used frame.
        test_clips: Clips of the test split; all other clips are training clips.
        seed: Seed of the camera sampling (with clip, frame and view index).
        background: Fill the background with a random (seeded) flat colour
            instead of the renderer's constant one.
        side_colours: Paint the left limbs blue and the right limbs red (trunk and
            head light grey). The plain grey humanoid looks the same facing the
            camera as facing away with left and right swapped, an ambiguity a
            person's face and clothes resolve in real images (see the benchmarks
            page for what it does to image -> 3D).
        recombined: Extra training frames (clip ``"recombined"``) whose limbs come
            from different training frames (see `recombine_frames`): new,
            anatomically valid poses for the image branch, whose limit is the
            number of distinct training poses. Rendered like the others.
        progress: Show a progress bar on stderr (updated every 30 s when stderr is
            not a terminal).
        force: Rebuild even if the cache exists.

    Returns:
        ``{"train": path, "test": path}``.
    """
    check_int("image_size", image_size, low=16)
    check_int("recombined", recombined, low=0)
    check_int("stride", stride, low=1)
    check_int("cameras_per_frame", cameras_per_frame, low=1)
    data_path = _pybullet_data_path()
    clips = _check_test_clips(test_clips, list_mocap_clips(data_path))
    splits = {
        "train": [c for c in clips if c not in test_clips],
        "test": [c for c in clips if c in test_clips],
    }
    key = _config_key(
        image_size=image_size, stride=stride, cameras=cameras_per_frame,
        test=sorted(test_clips), seed=seed, background=background,
        # only non-default options enter the key, so older caches stay valid
        **({"side_colours": True} if side_colours else {}),
        **({"recombined": recombined} if recombined else {}),
    )  # fmt: skip
    out_dir = Path(cache_dir or default_cache_dir()) / f"humanoid_mocap_{key}"
    paths = {s: out_dir / f"{s}.npz" for s in splits}
    if not force and all(p.is_file() for p in paths.values()):
        return paths
    out_dir.mkdir(parents=True, exist_ok=True)
    clip_frames = {c: load_mocap_clip(c, data_path) for c in clips}
    if recombined:
        pool = np.concatenate([clip_frames[c][::stride] for c in splits["train"]])
        rng = np.random.default_rng([seed, 7919])
        clip_frames[RECOMBINED] = recombine_frames(pool, recombined, rng)
        clips = [*clips, RECOMBINED]
        splits["train"].append(RECOMBINED)
    strides = {c: 1 if c == RECOMBINED else stride for c in clips}
    total = sum(len(range(0, len(f), strides[c])) for c, f in clip_frames.items())
    total *= cameras_per_frame
    bar = tqdm(
        total=total, desc="rendering the humanoid mocap dataset (once)", disable=not progress,
        unit="image", mininterval=1.0 if sys.stderr.isatty() else 30.0,
    )  # fmt: skip
    renderer = _Renderer(data_path, side_colours)
    try:
        for split, names in splits.items():
            rec: dict[str, list] = defaultdict(list)
            for clip in names:
                frames = clip_frames[clip]
                world = humanoid_forward_kinematics(frames)
                clip_id = clips.index(clip)
                for fi in range(0, len(frames), strides[clip]):
                    renderer.pose(frames[fi])
                    for v in range(cameras_per_frame):
                        rng = np.random.default_rng([seed, clip_id, fi, v])
                        r, c, k = _sample_camera(rng, world[fi, 0])
                        sample = _render_view(
                            renderer, world[fi], r, c, k, image_size, rng, background
                        )
                        sample.update(R=r, cam_pos=c, clip=clip, frame=fi, view=v)
                        for name, value in sample.items():
                            rec[name].append(value)
                        bar.update(1)
            arrays = {k: np.asarray(v) for k, v in rec.items()}
            for k in ("pose2d", "pose3d", "root", "K", "R", "cam_pos", "crop_box"):
                arrays[k] = arrays[k].astype(np.float32)
            write_npz_atomically(paths[split], arrays)
    finally:
        renderer.close()
        bar.close()
    return paths


#: Clip name of the frames made by ``build_humanoid_mocap(recombined=...)``.
RECOMBINED = "recombined"
# Slices of the four limbs in a 44-number frame: local rotations of hip, knee,
# ankle (legs) and shoulder, elbow (arms); relative to their parent link.
_LIMB_SLICES = (slice(16, 25), slice(25, 30), slice(30, 39), slice(39, 44))


def recombine_frames(
    frames: np.ndarray, count: int, rng: np.random.Generator, p: float = 0.5
) -> np.ndarray:
    """New DeepMimic frames whose limbs come from other frames.

    Each new frame starts from a random frame of ``frames`` (root, chest and
    neck included); each of its four limbs (hip, knee and ankle; shoulder and
    elbow) takes, with probability ``p``, the local joint rotations of another
    random frame. Local rotations are relative to the parent link, so a limb
    keeps its pose relative to the trunk: the result is a valid pose of the
    humanoid that no clip contains (the image counterpart of
    [`PoseAugmentation.limb_swap`][unihpr.data.augment.PoseAugmentation]).

    Args:
        frames: (N, 44) frames.
        count: Number of new frames.
        rng: Random generator.
        p: Probability that a limb is replaced.

    Returns:
        (count, 44) frames.
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != FRAME_SIZE or len(frames) == 0:
        raise ValueError(
            f"frames must have shape (N, {FRAME_SIZE}) with N >= 1, got {frames.shape}"
        )
    out = frames[rng.integers(0, len(frames), count)].copy()
    for limb in _LIMB_SLICES:
        swap = rng.random(count) < p
        donors = frames[rng.integers(0, len(frames), count)]
        out[swap, limb] = donors[swap, limb]
    return out


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    """Read a cache npz; a damaged one is deleted (the next call rebuilds it) and named."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
        path.unlink(missing_ok=True)
        raise ValueError(
            f"{path}: corrupt mocap cache file ({type(err).__name__}: {err}); it was deleted "
            "and will be rebuilt on the next call"
        ) from err


def _render_view(renderer, joints_world, r, c, k, size, rng, background) -> dict:
    cam = (joints_world - c) @ r  # (15, 3) camera frame
    uv = cam[:, :2] / cam[:, 2:3] * [k[0, 0], k[1, 1]] + k[:2, 2]
    lo, hi = uv.min(0), uv.max(0)
    # the joints are inside the limbs: pad by ~0.3 m so the head top, feet and
    # hands (body volume beyond the joints) stay inside the crop
    pad = 0.3 * k[0, 0] / cam[0, 2]
    side = float(max(hi - lo) + 2 * pad)
    x0, y0 = (lo + hi) / 2 - side / 2
    s = size / side
    k_crop = np.array([[k[0, 0] * s, 0.0, (k[0, 2] - x0) * s], [0.0, k[1, 1] * s, (k[1, 2] - y0) * s],
                       [0.0, 0.0, 1.0]])  # fmt: skip
    view, proj = opengl_matrices(r, c, k_crop, size, size)
    rgb, mask = renderer.render(view, proj, size)
    if background:
        colour = rng.integers(0, 256, size=3, dtype=np.uint8)
        rgb = np.where(mask[..., None], rgb, colour)
    return {
        "image": rgb,
        "pose2d": (uv - [x0, y0]) * s,
        "pose3d": cam - cam[:1],
        "root": cam[0],
        "K": k_crop,
        "crop_box": np.array([x0, y0, x0 + side, y0 + side]),
    }


class HumanoidMocap(ArrayPoseDataset):
    """The DeepMimic humanoid mocap dataset (images, 2D and 3D, 15 joints).

    Built on first use into the cache (see [`build_humanoid_mocap`][], whose
    keyword arguments are accepted here) and then loaded from its npz.

    Samples: ``image`` (3, S, S) float32 in [0, 1]; ``pose2d`` (15, 2) crop
    pixels; ``pose3d`` (15, 3) camera-frame metres, root-relative; ``subject``
    and ``action`` (the clip name); ``frame``, ``index``. ``skeleton`` is
    `HUMANOID15`.

    Args:
        split: ``"train"`` or ``"test"`` (disjoint clips).
        cache_dir: Cache folder; default ``~/.cache/unihpr`` (or ``$UNIHPR_CACHE``).
        **build_kwargs: ``image_size``, ``stride``, ``cameras_per_frame``,
            ``test_clips``, ``seed``, ``background``, ``side_colours``,
            ``recombined``, ``progress``, ``force``.
    """

    skeleton = HUMANOID15

    text_fields = ("subject", "action")

    def __init__(
        self,
        split: str = "train",
        cache_dir: str | os.PathLike | None = None,
        **build_kwargs,
    ) -> None:
        check_choice("split", split, ("train", "test"))
        self.path = build_humanoid_mocap(cache_dir, **build_kwargs)[split]
        self.arrays = _load_cache(self.path)
        self.clips = sorted(set(self.arrays["clip"].tolist()))
        # The clip names the subject and the action of a sample.
        self.arrays["subject"] = self.arrays["action"] = self.arrays["clip"]

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        image = self.arrays["image"][sample["index"]]
        sample["image"] = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        return sample
