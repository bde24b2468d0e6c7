import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")

from unihpr.data import mocap
from unihpr.data._io import write_npz_atomically
from unihpr.data.skeletons import HUMANOID15

SMALL = {"stride": 9, "cameras_per_frame": 1, "image_size": 64, "progress": False}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("mocap")
    return root, mocap.build_humanoid_mocap(root, **SMALL)


@pytest.fixture(scope="module")
def renderer():
    r = mocap._Renderer(mocap._pybullet_data_path())
    yield r
    r.close()


def test_clips_and_frame_layout():
    clips = mocap.list_mocap_clips()
    assert len(clips) == 15 and "walk" in clips
    frames = mocap.load_mocap_clip("walk")
    assert frames.shape[1] == 44
    # root rotation and the spherical joints are unit quaternions
    for k in (4, 8, 12, 16, 21, 25, 30, 35, 39):
        np.testing.assert_allclose(np.linalg.norm(frames[:, k : k + 4], axis=1), 1.0, atol=1e-3)


def test_forward_kinematics_matches_pybullet(renderer):
    frames = mocap.load_mocap_clip("cartwheel")[::20]
    ours = mocap.humanoid_forward_kinematics(frames)
    for i, f in enumerate(frames):
        renderer.pose(f)
        np.testing.assert_allclose(renderer.link_positions(), ours[i], atol=1e-5)


def test_bone_lengths_constant_and_body_is_human_sized():
    for clip in mocap.list_mocap_clips():
        pos = mocap.humanoid_forward_kinematics(mocap.load_mocap_clip(clip))
        for j, p in HUMANOID15.bones:
            lengths = np.linalg.norm(pos[:, j] - pos[:, p], axis=-1)
            assert lengths.std() < 1e-9, (clip, j)
    standing = mocap.humanoid_forward_kinematics(mocap.load_mocap_clip("walk"))[0]
    # pelvis-to-ankle ~0.83 m, shoulders ~0.37 m apart
    leg = np.linalg.norm(standing[5] - standing[3]) + np.linalg.norm(standing[3] - standing[0])
    assert 0.75 < leg < 0.95
    assert 0.3 < np.linalg.norm(standing[6] - standing[12]) < 0.45


def test_projection_agrees_with_rendered_silhouette(renderer):
    rng = np.random.default_rng(0)
    on_body, on_body_flipped = [], []
    for clip in ("walk", "cartwheel", "crawl"):
        frames = mocap.load_mocap_clip(clip)
        world = mocap.humanoid_forward_kinematics(frames)
        for fi in range(0, len(frames), max(1, len(frames) // 4)):
            renderer.pose(frames[fi])
            r, c, k = mocap._sample_camera(rng, world[fi, 0])
            s = mocap._render_view(renderer, world[fi], r, c, k, 96, rng, False)
            view, proj = mocap.opengl_matrices(r, c, s["K"], 96, 96)
            _, mask = renderer.render(view, proj, 96)
            assert mask.sum() > 50
            # dilate the mask by one pixel: joints on thin limbs sit on the edge
            grown = mask.copy()
            grown[1:] |= mask[:-1]
            grown[:-1] |= mask[1:]
            grown[:, 1:] |= mask[:, :-1]
            grown[:, :-1] |= mask[:, 1:]

            def hits(uv, grown=grown):
                ij = np.floor(uv).astype(int)
                inside = (ij >= 0).all(1) & (ij < 96).all(1)
                return inside & grown[ij[:, 1].clip(0, 95), ij[:, 0].clip(0, 95)]

            on_body.append(hits(s["pose2d"]))
            on_body_flipped.append(hits(s["pose2d"] * [1, -1] + [0, 96]))
            # the silhouette's box contains the joints' box and exceeds it by no
            # more than the body's thickness (head ~0.28 m above the neck joint)
            ys, xs = np.nonzero(mask)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            lo, hi = s["pose2d"].min(0), s["pose2d"].max(0)
            assert np.all(box[:2] <= lo + 1.0) and np.all(box[2:] >= hi - 1.0)
            slack = 0.35 * s["K"][0, 0] / s["root"][2]
            assert np.all(lo - box[:2] <= slack) and np.all(box[2:] - hi <= slack)
    assert np.mean(on_body) > 0.97
    # control: vertically mirrored joints mostly miss the body, so the check can fail
    assert np.mean(on_body_flipped) < 0.7


def test_side_colours_paint_left_blue_and_right_red():
    renderer = mocap._Renderer(mocap._pybullet_data_path(), side_colours=True)
    try:
        frames = mocap.load_mocap_clip("walk")
        world = mocap.humanoid_forward_kinematics(frames)
        renderer.pose(frames[0])
        rng = np.random.default_rng(1)
        r, c, k = mocap._sample_camera(rng, world[0, 0])
        s = mocap._render_view(renderer, world[0], r, c, k, 96, rng, False)
        view, proj = mocap.opengl_matrices(r, c, s["K"], 96, 96)
        rgb, mask = renderer.render(view, proj, 96)
    finally:
        renderer.close()
    body = rgb[mask].astype(int)
    red = (body[:, 0] > body[:, 2] + 60).mean()
    blue = (body[:, 2] > body[:, 0] + 60).mean()
    assert red > 0.1 and blue > 0.1, (red, blue)

    # each limb's own 2D joints sit on its colour
    def colour_at(j):
        x, y = np.floor(s["pose2d"][j]).astype(int).clip(0, 95)
        return rgb[y, x].astype(int)

    for name, channel in (("left_knee", 2), ("right_knee", 0)):
        px = colour_at(HUMANOID15.index(name))
        assert px[channel] == px.max(), (name, px)


def test_split_disjoint_dataset_contract_and_cache(built):
    root, paths = built
    train = mocap.HumanoidMocap("train", root, **SMALL)
    test = mocap.HumanoidMocap("test", root, **SMALL)
    assert set(train.clips).isdisjoint(test.clips)
    assert set(test.clips) == set(mocap.DEFAULT_TEST_CLIPS)
    assert set(train.clips) | set(test.clips) == set(mocap.list_mocap_clips())
    s = train[3]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert float(s["image"].min()) >= 0.0 and float(s["image"].max()) <= 1.0
    assert float(s["image"].std()) > 0.02
    assert s["pose2d"].shape == (15, 2) and s["pose3d"].shape == (15, 3)
    assert torch.allclose(s["pose3d"][0], torch.zeros(3))
    assert s["subject"] == s["action"] and s["subject"] in train.clips
    assert s["index"] == 3
    # the body is in front of the camera, 3.5 - 6 m away
    assert np.all((train.arrays["root"][:, 2] > 3.0) & (train.arrays["root"][:, 2] < 6.5))
    mtime = paths["train"].stat().st_mtime_ns
    mocap.build_humanoid_mocap(root, **SMALL)  # cached: not rebuilt
    assert paths["train"].stat().st_mtime_ns == mtime


def test_rendering_is_deterministic(built, tmp_path):
    _, paths = built
    again = mocap.build_humanoid_mocap(tmp_path, **SMALL)
    a, b = np.load(paths["test"]), np.load(again["test"])
    for key in a.files:
        assert np.array_equal(a[key], b[key]), key


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="test_clips"):
        mocap.build_humanoid_mocap(tmp_path, test_clips=["moonwalk"])
    with pytest.raises(ValueError, match="split"):
        mocap.HumanoidMocap("val", tmp_path)
    with pytest.raises(ValueError, match=r"\(N, 44\)"):
        mocap.humanoid_forward_kinematics(np.zeros((3, 43)))


def test_recombined_frames_mix_limbs_of_real_frames():
    frames = np.concatenate([mocap.load_mocap_clip(c) for c in ("walk", "punch", "jump")])
    out = mocap.recombine_frames(frames, 200, np.random.default_rng(0), p=0.5)
    assert out.shape == (200, 44)
    limbs = mocap._LIMB_SLICES
    trunk = np.r_[0:16]
    mixed = 0
    for f in out:
        base = np.flatnonzero(np.all(frames[:, trunk] == f[trunk], axis=1))
        assert base.size  # root, chest and neck of one real frame
        for limb in limbs:  # every limb is some real frame's limb
            assert np.any(np.all(frames[:, limb] == f[limb], axis=1))
        mixed += not np.any(np.all(frames == f, axis=1))
    assert mixed > 100  # most are new poses
    # rotations stay unit quaternions, so forward kinematics keeps the bone lengths
    pos = mocap.humanoid_forward_kinematics(out)
    ref = mocap.humanoid_forward_kinematics(frames[:1])
    for j, p in HUMANOID15.bones:
        np.testing.assert_allclose(np.linalg.norm(pos[:, j] - pos[:, p], axis=-1),
                                   np.linalg.norm(ref[:, j] - ref[:, p], axis=-1)[0], atol=1e-9)  # fmt: skip
    with pytest.raises(ValueError, match="frames"):
        mocap.recombine_frames(np.zeros((3, 40)), 2, np.random.default_rng(0))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_cache_is_named_and_rebuilt_on_the_next_call(built, tmp_path, damage):
    _, paths = built
    root = tmp_path / "cache"
    fresh = mocap.build_humanoid_mocap(root, **SMALL)
    blob = fresh["test"].read_bytes()
    fresh["test"].write_bytes(
        {"truncated": blob[: len(blob) // 2], "garbage": b"\x00" * 100, "empty": b""}[damage]
    )
    with pytest.raises(ValueError, match=r"test\.npz: corrupt mocap cache file.*rebuilt"):
        mocap.HumanoidMocap("test", root, **SMALL)
    ds = mocap.HumanoidMocap("test", root, **SMALL)  # rebuilt, identical to a clean build
    with np.load(paths["test"]) as ref:
        for key in ("pose3d", "pose2d", "image"):
            assert np.array_equal(ds.arrays[key], ref[key]), key


TINY = {"stride": 60, "cameras_per_frame": 1, "image_size": 16, "progress": False}


def _build_in_subprocess(root):
    return {k: str(v) for k, v in mocap.build_humanoid_mocap(root, **TINY).items()}


def test_concurrent_builds_into_one_empty_cache(tmp_path):
    import multiprocessing as mp

    with mp.get_context("fork").Pool(3) as pool:
        results = pool.map(_build_in_subprocess, [tmp_path] * 3)  # raises if any build failed
    assert results[0] == results[1] == results[2]
    for split in ("train", "test"):
        with np.load(results[0][split]) as z:
            assert len(z["pose3d"]) > 0
    assert [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")] == []


def test_interleaved_cache_writes_do_not_collide(tmp_path, monkeypatch):
    # Deterministic version of the race: a second writer of the same file runs
    # while the first is still writing its temporary (a fixed temporary name
    # made the first os.replace fail with FileNotFoundError).
    path = tmp_path / "train.npz"
    savez = np.savez
    calls = []

    def savez_with_a_rival(f, **arrays):
        calls.append(1)
        if len(calls) == 1:
            write_npz_atomically(path, {"x": np.arange(2)})
        savez(f, **arrays)

    monkeypatch.setattr(mocap.np, "savez", savez_with_a_rival)
    write_npz_atomically(path, {"x": np.arange(3)})
    with np.load(path) as z:
        assert z["x"].tolist() == [0, 1, 2]  # the last writer wins, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.npz"]
