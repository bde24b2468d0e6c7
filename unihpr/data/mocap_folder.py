"""Your own motion capture: a folder of BVH and ASF/AMC files as world-frame motion.

[`MocapFolder`][] reads every ``.bvh`` file and every ``.amc`` file (with its
``.asf`` skeleton) under a folder, maps each rig's joints onto one layout by
name (``HUMANOID15`` by default, the bundled model's), converts lengths to
metres and the up axis to y, resamples every clip to one frame rate and keeps
the result as one array ``motion`` ``(N, J, 3)``: world-frame joints in
metres, y up, the convention of [`HumanoidMocap`][unihpr.data.HumanoidMocap].
This is the input of a virtual-camera wrapper, which turns world motion
into 2D/3D training pairs.

Pairing of AMC and ASF files: ``walk.amc`` uses ``walk.asf`` if it exists,
else the only ``.asf`` in its folder, else the ``.asf`` named by the part of
its name before the first ``_`` (CMU: ``01_02.amc`` -> ``01.asf``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from unihpr._validate import check_bool, check_choice, check_real
from unihpr.data._io import write_npz_atomically
from unihpr.data.asf_amc import AsfSkeleton, read_amc, read_asf
from unihpr.data.bvh import read_bvh
from unihpr.data.mapping import JointSource
from unihpr.data.mocap_clip import UP_AXES, MocapClip, resample_motion, resolve_length_unit
from unihpr.data.skeletons import Skeleton, get_skeleton
from unihpr.data.virtual_cameras import VirtualCameraDataset

__all__ = ["MocapFolder", "list_mocap_files", "read_mocap_file"]

_SUFFIXES = (".bvh", ".amc")
_CACHE_VERSION = 1
_INFO_KEYS = {"unit", "file_fps", "file_frames", "rig_joints", "rig_parents"}


def _stamp(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _jsonable(obj: object) -> object:
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"mapping values must be names, tuples of names or weight dicts, got {obj!r}")


def _load_cached(path: Path) -> tuple[np.ndarray, dict] | None:
    """A cached file's (motion, info), or None when absent or unreadable (then re-read)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            motion, info = z["motion"], json.loads(str(z["info"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    ok = motion.dtype == np.float32 and motion.ndim == 3 and motion.shape[2] == 3
    ok = ok and isinstance(info, dict) and set(info) >= _INFO_KEYS
    return (motion, info) if ok else None


def list_mocap_files(root: str | os.PathLike) -> list[Path]:
    """The ``.bvh`` and ``.amc`` files under ``root`` (recursive, sorted), or ``[root]``
    for a single file."""
    root = Path(root).expanduser()
    if root.is_file():
        if root.suffix.lower() not in _SUFFIXES:
            raise ValueError(f"{root}: not a .bvh or .amc file")
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"motion-capture folder not found: {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file())


def _asf_for(amc: Path) -> Path:
    same = amc.with_suffix(".asf")
    if same.is_file():
        return same
    candidates = sorted(p for p in amc.parent.iterdir() if p.suffix.lower() == ".asf")
    if len(candidates) == 1:
        return candidates[0]
    prefix = amc.parent / (amc.stem.split("_", 1)[0] + ".asf")
    if prefix.is_file():
        return prefix
    raise FileNotFoundError(
        f"{amc}: no ASF skeleton found (looked for {same.name}, a single .asf in the folder "
        f"and {prefix.name}); found {[p.name for p in candidates]}"
    )


def read_mocap_file(
    path: str | os.PathLike,
    *,
    unit: str | float = "auto",
    up_axis: str = "y",
    amc_fps: float = 120.0,
    asf: AsfSkeleton | str | os.PathLike | None = None,
) -> MocapClip:
    """Read one ``.bvh`` or ``.amc`` file (the ``.asf`` found as in the module docstring,
    unless ``asf`` is given). See [`read_bvh`][unihpr.data.bvh.read_bvh] and
    [`read_amc`][unihpr.data.asf_amc.read_amc] for the arguments."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        return read_bvh(path, unit=unit, up_axis=up_axis)
    if suffix == ".amc":
        return read_amc(path, asf or _asf_for(path), unit=unit, up_axis=up_axis, fps=amc_fps)
    raise ValueError(f"{path}: not a .bvh or .amc file")


def _in_test_split(clip: str, fraction: float) -> bool:
    # a hash of the clip id: adding or removing files never moves other clips
    h = int(hashlib.sha1(clip.encode("utf-8")).hexdigest()[:8], 16)
    return h / 16**8 < fraction


class MocapFolder(Dataset):
    """World-frame motion of a folder of BVH and ASF/AMC files, in one joint layout.

    Args:
        root: A folder (searched recursively) or a single ``.bvh`` / ``.amc`` file.
        skeleton: The layout to map every rig to (``"humanoid15"``, the bundled
            model's; ``"h36m17"``; any registered layout with a dict
            ``mapping``), or ``None`` to keep the files' own joints (all files
            must then have the same joint names).
        mapping: How rig joints become ``skeleton``'s joints: ``"auto"``, a preset
            of [`RIG_MAPPINGS`][unihpr.data.mapping.RIG_MAPPINGS] or your own
            ``{joint: rig joint}``; see
            [`resolve_rig_mapping`][unihpr.data.mapping.resolve_rig_mapping].
        unit: Length unit of the files (``"auto"``, a name of
            ``unihpr.data.mocap_clip.LENGTH_UNITS`` or metres per unit).
        up_axis: ``"y"`` or ``"z"``: the files' up axis; the motion is y up.
        fps: Frame rate to resample every clip to (``None`` keeps each file's).
        split: ``"all"``, ``"train"`` or ``"test"``.
        test_clips: Clip ids (see ``clips`` below) of the test split; by default a
            clip is a test clip when a hash of its id falls below ``test_fraction``.
        test_fraction: Share of clips in the test split when ``test_clips`` is ``None``.
        amc_fps: Frame rate of the AMC files (they do not store it; CMU's is 120).
        skip_invalid: Warn about and skip unreadable or unmappable files instead
            of raising.
        cache_dir: Keep every file's result here (an npz named by a hash of the
            file's path, size and modification time and of these settings), so
            that reading the folder again only parses new or changed files.

    Attributes:
        motion: (N, J, 3) float32 world joints, metres, y up.
        skeleton: The [`Skeleton`][unihpr.data.skeletons.Skeleton] of ``motion``.
        clips: Clip ids of this split: file paths relative to ``root`` without suffix.
        clip_index: (N,) int64 index into ``clips`` of every frame.
        frames: (N,) int64 frame number within its (resampled) clip.
        clip_info: ``{clip id: {"source", "unit", "file_fps", "file_frames"}}``.

    Samples: ``joints`` (J, 3) float32 world metres, ``clip``, ``frame``, ``index``.

    Examples:
        >>> data = MocapFolder("my_mocap/", mapping="mixamo", fps=30)  # doctest: +SKIP
        >>> data.motion.shape, data.skeleton.name  # doctest: +SKIP
        ((48210, 15, 3), 'humanoid15')
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        skeleton: str | Skeleton | None = "humanoid15",
        mapping: str | Mapping[str, JointSource] = "auto",
        unit: str | float = "auto",
        up_axis: str = "y",
        fps: float | None = 30.0,
        split: str = "all",
        test_clips: Sequence[str] | None = None,
        test_fraction: float = 0.2,
        amc_fps: float = 120.0,
        skip_invalid: bool = False,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        check_choice("split", split, ("all", "train", "test"))
        check_real("test_fraction", test_fraction, low=0.0, high=1.0)
        if fps is not None:
            check_real("fps", fps, low=0.0, low_open=True)
        check_real("amc_fps", amc_fps, low=0.0, low_open=True)
        check_choice("up_axis", up_axis, UP_AXES)
        check_bool("skip_invalid", skip_invalid)
        if unit != "auto":
            resolve_length_unit(unit, 1.0)  # reject a bad unit before reading any file
        self.root = Path(root).expanduser()
        files = list_mocap_files(self.root)
        base = self.root if self.root.is_dir() else self.root.parent
        ids = {f: f.relative_to(base).with_suffix("").as_posix() for f in files}
        if test_clips is not None:
            unknown = sorted(set(test_clips) - set(ids.values()))
            if unknown:
                raise ValueError(f"test_clips {unknown} are not clips of {self.root}; "
                                 f"clips: {sorted(ids.values())}")  # fmt: skip
            test = set(test_clips)
        else:
            test = {c for c in ids.values() if _in_test_split(c, test_fraction)}
        if split != "all":
            files = [f for f in files if (ids[f] in test) == (split == "test")]
        if not files:
            raise ValueError(
                f"no .bvh or .amc files for split {split!r} under {self.root}"
                + ("" if split == "all" else " (pass test_clips= or change test_fraction)")
            )
        self._keep_rig = skeleton is None
        self.skeleton = None if self._keep_rig else get_skeleton(skeleton)
        self.fps = fps
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        settings = {
            "version": _CACHE_VERSION,
            "skeleton": None if self._keep_rig else [self.skeleton.name, self.skeleton.joint_names],
            "mapping": mapping, "unit": unit, "up_axis": up_axis, "fps": fps, "amc_fps": amc_fps,
        }  # fmt: skip
        self.clips: list[str] = []
        self.clip_info: dict[str, dict[str, Any]] = {}
        motions, asf_cache = [], {}
        for f in files:
            try:
                joints, info = self._read(f, settings, asf_cache)
                self._check_rig(f, info)
            except (ValueError, FileNotFoundError) as err:
                if not skip_invalid:
                    raise
                warnings.warn(f"skipping {f}: {err}", stacklevel=2)
                continue
            self.clips.append(ids[f])
            self.clip_info[ids[f]] = {"source": f, "unit": info["unit"],
                                      "file_fps": info["file_fps"],
                                      "file_frames": info["file_frames"]}  # fmt: skip
            motions.append(joints)
        if not motions:
            raise ValueError(f"no readable motion under {self.root} (every file was skipped)")
        self.motion = np.concatenate(motions)
        self.clip_index = np.concatenate(
            [np.full(len(m), k, dtype=np.int64) for k, m in enumerate(motions)]
        )
        self.frames = np.concatenate([np.arange(len(m), dtype=np.int64) for m in motions])

    def _read(self, f: Path, settings: dict, asf_cache: dict) -> tuple[np.ndarray, dict]:
        """(joints (T, J, 3) float32 in the dataset's layout and rate, info) of one file."""
        asf_path = _asf_for(f) if f.suffix.lower() == ".amc" else None
        cache = None
        if self.cache_dir is not None:
            stamp = {"file": _stamp(f), "asf": _stamp(asf_path) if asf_path else None}
            blob = json.dumps({**settings, **stamp}, sort_keys=True, default=_jsonable)
            cache = self.cache_dir / f"{hashlib.sha1(blob.encode()).hexdigest()[:16]}.npz"
            hit = _load_cached(cache)
            if hit is not None:
                return hit
        if asf_path is not None and asf_path not in asf_cache:
            asf_cache[asf_path] = read_asf(asf_path)
        clip = read_mocap_file(f, unit=settings["unit"], up_axis=settings["up_axis"],
                               amc_fps=settings["amc_fps"], asf=asf_cache.get(asf_path))  # fmt: skip
        joints = clip.joints if self._keep_rig else clip.map_to(self.skeleton, settings["mapping"])
        if self.fps is not None:
            try:
                joints = resample_motion(joints, clip.fps, self.fps)
            except ValueError as err:  # a file's frame rate far from fps
                raise ValueError(f"{f}: {err}") from None
        joints = joints.astype(np.float32)
        info = {"unit": clip.unit, "file_fps": clip.fps, "file_frames": clip.num_frames,
                "rig_joints": list(clip.skeleton.joint_names),
                "rig_parents": list(clip.skeleton.parents)}  # fmt: skip
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            write_npz_atomically(cache, {"motion": joints, "info": np.array(json.dumps(info))})
        return joints, info

    def _check_rig(self, f: Path, info: dict) -> None:
        """With ``skeleton=None`` the first file fixes the layout; later ones must match it."""
        if not self._keep_rig:
            return
        names, parents = tuple(info["rig_joints"]), tuple(info["rig_parents"])
        if self.skeleton is None:
            self.skeleton = Skeleton("mocap", names, parents, ())
        elif names != self.skeleton.joint_names:
            raise ValueError(
                f"{f}: joints {list(names)} differ from the first file's "
                f"{list(self.skeleton.joint_names)}; pass skeleton= to map them"
            )

    def virtual_cameras(self, **kwargs: Any) -> VirtualCameraDataset:
        """This motion seen through a fresh random camera at every access.

        Image-free 2D/3D training pairs for the pose stages of
        [`train_pipeline`][unihpr.train.pipeline.train_pipeline] (step 1 and the
        lifting fine-tune): each sample is a frame of ``motion`` projected
        through a camera drawn from ``cameras``, with its clip id and frame
        number as ``subject`` / ``action`` and ``frame``.

        Args:
            **kwargs: ``cameras``, ``augment`` and ``generator`` of
                [`VirtualCameraDataset`][unihpr.data.virtual_cameras.VirtualCameraDataset].

        Returns:
            A [`VirtualCameraDataset`][unihpr.data.virtual_cameras.VirtualCameraDataset]
            of ``len(self)`` samples in ``self.skeleton``'s layout.

        Examples:
            >>> data = MocapFolder("my_mocap/", mapping="mixamo")  # doctest: +SKIP
            >>> pairs = data.virtual_cameras()  # doctest: +SKIP
            >>> pairs[0]["pose2d"].shape, pairs[0]["pose3d"].shape  # doctest: +SKIP
            (torch.Size([15, 2]), torch.Size([15, 3]))
        """
        taken = {"motion", "skeleton", "clips", "frames"} & set(kwargs)
        if taken:
            raise TypeError(
                f"virtual_cameras() sets {sorted(taken)} from the folder; pass only cameras, "
                "augment or generator"
            )
        return VirtualCameraDataset(self.motion, self.skeleton, clips=self.clip_names,
                                    frames=self.frames.tolist(), **kwargs)  # fmt: skip

    @property
    def clip_names(self) -> list[str]:
        """(N,) the clip id of every frame."""
        return [self.clips[i] for i in self.clip_index]

    def __len__(self) -> int:
        return int(self.motion.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} frames")
        i = int(index) % n
        return {
            "joints": torch.from_numpy(self.motion[i]),
            "clip": self.clips[self.clip_index[i]],
            "frame": int(self.frames[i]),
            "index": i,
        }
