import re

import numpy as np
import pytest
import torch
from mocap_files import (
    amc_text,
    asf_text,
    bvh_text,
    cmu_like_bones,
    humanoid_bvh_joints,
    random_frames,
    write,
)

from unihpr.data.bvh import read_bvh
from unihpr.data.mocap_clip import resample_motion
from unihpr.data.mocap_folder import MocapFolder, list_mocap_files, read_mocap_file
from unihpr.data.skeletons import HUMANOID15

MIXAMO = {n: f"mixamorig:{n}" for n in ("Hips", "Spine", "Spine1", "Neck", "Head", "LeftShoulder",
          "LeftArm", "LeftForeArm", "LeftHand", "RightShoulder", "RightArm", "RightForeArm",
          "RightHand", "LeftUpLeg", "LeftLeg", "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot")}  # fmt: skip


def _make_folder(root, rng=None):
    rng = rng or np.random.default_rng(0)
    cmu = humanoid_bvh_joints({}, scale=100.0)  # cm
    write(root / "cmu" / "walk.bvh",
          bvh_text(cmu, random_frames(cmu, 41, rng, 95.0), frame_time=1 / 120))  # fmt: skip
    mix = humanoid_bvh_joints(MIXAMO, scale=100.0)
    write(root / "mixamo" / "jump.bvh",
          bvh_text(mix, random_frames(mix, 20, rng, 95.0), frame_time=1 / 30))  # fmt: skip
    bones = cmu_like_bones()
    write(root / "asf" / "01.asf", asf_text(bones, length_factor=0.45))
    for k, t in ((1, 13), (2, 9)):
        r = np.concatenate([np.array([[0, 17.0 * 0.45, 0]]) + rng.normal(size=(t, 3)) * 0.1,
                            rng.uniform(-20, 20, (t, 3))], 1)  # fmt: skip
        values = {b["name"]: rng.uniform(-30, 30, (t, 3)) for b in bones}
        write(root / "asf" / f"01_0{k}.amc", amc_text(r, values))
    return root


def test_folder_reads_maps_and_resamples_every_rig(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    data = MocapFolder(root, fps=30.0)
    assert data.clips == ["asf/01_01", "asf/01_02", "cmu/walk", "mixamo/jump"]
    assert data.skeleton is HUMANOID15
    lengths = {"asf/01_01": 4, "asf/01_02": 3, "cmu/walk": 11, "mixamo/jump": 20}
    assert len(data) == data.motion.shape[0] == sum(lengths.values())
    assert data.motion.shape[1:] == (15, 3) and data.motion.dtype == np.float32
    assert data.clip_info["cmu/walk"]["unit"] == "cm"
    assert data.clip_info["asf/01_01"]["unit"] == "inch"
    assert data.clip_info["mixamo/jump"]["file_fps"] == pytest.approx(30.0)
    for k, clip in enumerate(data.clips):
        rows = data.clip_index == k
        assert rows.sum() == lengths[clip]
        np.testing.assert_array_equal(data.frames[rows], np.arange(lengths[clip]))
        # the same as reading, mapping and resampling the file alone
        one = read_mocap_file(data.clip_info[clip]["source"])
        ref = resample_motion(one.map_to("humanoid15"), one.fps, 30.0)
        np.testing.assert_allclose(data.motion[rows], ref, rtol=1e-6, atol=1e-6)
    # every rig comes out y up in metres: the neck well above the ankles
    neck, ankles = (
        HUMANOID15.index("neck"),
        [HUMANOID15.index("left_ankle"), HUMANOID15.index("right_ankle")],
    )
    height = data.motion[:, neck, 1] - data.motion[:, ankles, 1].mean(1)
    assert (height > 0.3).all() and (height < 2.0).all() and 0.8 < height.mean() < 1.6
    sample = data[3]
    assert set(sample) == {"joints", "clip", "frame", "index"}
    assert isinstance(sample["joints"], torch.Tensor) and sample["joints"].shape == (15, 3)
    assert data.clip_names[3] == sample["clip"] == "asf/01_01" and sample["frame"] == 3
    with pytest.raises(IndexError):
        data[len(data)]


def test_native_frame_rate_and_h36m_layout(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    data = MocapFolder(root / "cmu", fps=None, skeleton="h36m17")
    assert len(data) == 41 and data.motion.shape[1] == 17
    clip = read_bvh(root / "cmu" / "walk.bvh")
    head = clip.joints[:, clip.skeleton.joint_names.index("Head_end")]
    np.testing.assert_allclose(data.motion[:, 10], head, rtol=1e-6, atol=1e-6)
    single = MocapFolder(root / "cmu" / "walk.bvh")
    assert single.clips == ["walk"]


def test_splits_are_disjoint_clip_sets(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    train = MocapFolder(root, split="train", test_clips=["cmu/walk"])
    test = MocapFolder(root, split="test", test_clips=["cmu/walk"])
    assert test.clips == ["cmu/walk"] and "cmu/walk" not in train.clips
    assert sorted(train.clips + test.clips) == MocapFolder(root).clips
    # the default split is a fixed hash of the clip id
    assert MocapFolder(root, split="train", test_fraction=0.0).clips == MocapFolder(root).clips
    assert MocapFolder(root, split="test", test_fraction=1.0).clips == MocapFolder(root).clips
    with pytest.raises(ValueError, match=r"no \.bvh or \.amc files for split 'test'.*test_clips="):
        MocapFolder(root, split="test", test_fraction=0.0)
    with pytest.raises(ValueError, match=r"test_clips \['nope'\] are not clips"):
        MocapFolder(root, split="test", test_clips=["nope"])


def test_broken_files_raise_or_are_skipped(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    write(root / "cmu" / "broken.bvh", "HIERARCHY\nROOT Hips\n{\n")
    with pytest.raises(ValueError, match=r"broken\.bvh: no MOTION section"):
        MocapFolder(root)
    with pytest.warns(UserWarning, match=r"skipping .*broken\.bvh"):
        data = MocapFolder(root, skip_invalid=True)
    assert "cmu/broken" not in data.clips and len(data.clips) == 4
    # a rig the presets cannot map names the file
    write(root / "odd" / "robot.bvh", bvh_text(
        [{"name": "Base", "parent": -1, "offset": [0, 0, 0], "channels": ["Xposition"],
          "end": [0, 1, 0]}], np.zeros((2, 1))))  # fmt: skip
    with pytest.raises(ValueError, match=r"robot\.bvh: no preset of RIG_MAPPINGS fits"):
        MocapFolder(root / "odd")


def test_keeping_the_rig_layout(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    data = MocapFolder(root / "asf", skeleton=None, fps=None)
    assert data.skeleton.joint_names[0] == "root" and data.motion.shape == (
        22,
        30,
        3,
    )  # root, 24 bones, 5 tips
    with pytest.raises(ValueError, match="differ from the first file's"):
        MocapFolder(root, skeleton=None)


def test_arguments_and_missing_files(tmp_path):
    root = _make_folder(tmp_path / "mocap")
    with pytest.raises(FileNotFoundError, match="motion-capture folder not found"):
        MocapFolder(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split must be"):
        MocapFolder(root, split="val")
    with pytest.raises(ValueError, match="one of"):
        MocapFolder(root, unit="furlong")
    with pytest.raises(ValueError, match="fps must be"):
        MocapFolder(root, fps=0)
    with pytest.raises(ValueError, match="up_axis"):
        MocapFolder(root, up_axis="x")
    with pytest.raises(ValueError, match="amc_fps must be a finite number > 0"):
        MocapFolder(root, amc_fps=-1)
    with pytest.raises(TypeError, match="amc_fps must be a real number"):
        MocapFolder(root, amc_fps="120")
    with pytest.raises(TypeError, match="cameras must be a CameraDistribution or None, got str"):
        MocapFolder(root / "cmu").virtual_cameras(cameras="x")
    with pytest.raises(TypeError, match="augment must be callable"):
        MocapFolder(root / "cmu").virtual_cameras(augment=3)
    (root / "asf" / "02.asf").write_text((root / "asf" / "01.asf").read_text())
    write(root / "asf" / "07_01.amc", (root / "asf" / "01_01.amc").read_text())
    with pytest.raises(FileNotFoundError, match=r"07_01\.amc: no ASF skeleton found"):
        MocapFolder(root / "asf")
    assert [p.name for p in list_mocap_files(root / "cmu")] == ["walk.bvh"]
    with pytest.raises(ValueError, match=r"not a \.bvh or \.amc file"):
        list_mocap_files(root / "asf" / "01.asf")


def test_cache_serves_unchanged_files_and_rereads_changed_ones(tmp_path, monkeypatch):
    from unihpr.data import mocap_folder

    root = _make_folder(tmp_path / "mocap")
    cache = tmp_path / "cache"
    first = MocapFolder(root, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 4

    def no_parsing(*args, **kwargs):
        raise AssertionError("a cached file was parsed again")

    with monkeypatch.context() as m:
        m.setattr(mocap_folder, "read_mocap_file", no_parsing)
        again = MocapFolder(root, cache_dir=cache)
        np.testing.assert_array_equal(again.motion, first.motion)  # same files, same process
        assert again.clip_info == first.clip_info
    kept = MocapFolder(root / "asf", cache_dir=cache, skeleton=None)  # other settings: parsed
    assert kept.motion.shape[1] == 30
    assert len(list(cache.glob("*.npz"))) == 6
    # a changed file is parsed again; a corrupt cache entry is ignored
    path = root / "cmu" / "walk.bvh"
    path.write_text(re.sub(r"Frame Time: \S+", "Frame Time: 0.0166667", path.read_text()))
    for f in cache.glob("*.npz"):
        f.write_bytes(b"not a zip")
    changed = MocapFolder(root, cache_dir=cache)
    assert changed.clip_info["cmu/walk"]["file_fps"] == pytest.approx(60.0, rel=1e-4)
    assert (changed.clip_index == changed.clips.index("cmu/walk")).sum() == 21  # 41 at 60 -> 30 fps
    asf_rows = changed.clip_index == changed.clips.index("asf/01_01")  # re-read, same result
    np.testing.assert_array_equal(changed.motion[asf_rows], first.motion[first.clip_index == 0])


def test_virtual_cameras_train_the_pose_stages(tmp_path):
    """A BVH/ASF folder -> image-free 2D/3D pairs -> step 1 and the lifting fine-tune."""
    from unihpr.data.virtual_cameras import CameraDistribution
    from unihpr.train import LossConfig, StageConfig, TrainConfig, train_pipeline
    from unihpr.train.distributed import DistInfo

    data = MocapFolder(_make_folder(tmp_path / "mocap"), fps=30.0)
    pairs = data.virtual_cameras(
        cameras=CameraDistribution(), generator=torch.Generator().manual_seed(0)
    )
    assert len(pairs) == len(data)
    s = pairs[5]
    assert s["pose2d"].shape == (15, 2) and s["pose3d"].shape == (15, 3)
    assert s["action"] == data.clip_names[5] and s["frame"] == int(data.frames[5])
    # the camera is a rigid motion of the world joints: bone lengths survive it
    world = torch.from_numpy(data.motion[5]).double()
    torch.testing.assert_close(torch.cdist(s["pose3d"].double(), s["pose3d"].double()),
                               torch.cdist(world, world), atol=1e-5, rtol=0)  # fmt: skip
    with pytest.raises(TypeError, match="skeleton"):
        data.virtual_cameras(skeleton="h36m17")

    loss = LossConfig(tau_init=0.2, tau_min=0.1)
    stages = [StageConfig(name=n, steps=2, batch_size=8, loss=loss, checkpoint_every=2, log_every=1)
              for n in ("align2d3d", "finetune")]  # fmt: skip
    cfg = TrainConfig(model="unihpr-tiny", stages=stages, output_dir=str(tmp_path / "run"),
                      progress=False)  # fmt: skip
    res = train_pipeline(cfg, pairs, modalities=("pose2d", "pose3d"), dist_info=DistInfo())
    assert list(res.stages) == ["align2d3d", "finetune"]
    for name in ("align2d3d", "finetune"):
        losses = [h["loss"] for h in res.stages[name].history]
        assert len(losses) == 2 and all(np.isfinite(losses)), name
    assert (res.model_dir / "model.safetensors").is_file()
    assert res.model.pose2d_encoder.validate  # input checks are back on after training
