"""Render the DeepMimic humanoid at 512 px with known joint projections (for MediaPipe)."""

from pathlib import Path

import numpy as np

from unihpr.data.mocap import (
    _pybullet_data_path,
    _Renderer,
    humanoid_forward_kinematics,
    load_mocap_clip,
    look_at_camera,
    opengl_matrices,
)

rng = np.random.default_rng(0)
size = 512
r = _Renderer(_pybullet_data_path(), side_colours=False)
images, kps, meta = [], [], []
for clip in ("walk", "dance_a", "punch", "jump", "run", "kick", "spinkick", "dance_b"):
    frames = load_mocap_clip(clip)
    world = humanoid_forward_kinematics(frames)
    for i in range(0, len(frames), max(len(frames) // 12, 1)):
        r.pose(frames[i])
        root = world[i, 0]
        # the body's facing direction: from the hips' axis (y up)
        lat = world[i, 9] - world[i, 3]
        face = np.cross(np.array([0.0, 1.0, 0.0]), lat)
        face[1] = 0
        face /= np.linalg.norm(face) + 1e-9
        for view in range(3):
            az = rng.uniform(-np.pi / 3, np.pi / 3)
            c, s = np.cos(az), np.sin(az)
            d = np.array([c * face[0] + s * face[2], 0.0, -s * face[0] + c * face[2]])
            d[1] = np.tan(np.deg2rad(rng.uniform(0, 15)))
            pos = root + 4.0 * d / np.linalg.norm(d)
            rot = look_at_camera(pos, root)
            f = 1.1 * size
            k = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])
            view_m, proj_m = opengl_matrices(rot, pos, k, size, size)
            rgb, _ = r.render(view_m, proj_m, size)
            cam = (world[i] - pos) @ rot
            uv = cam[:, :2] / cam[:, 2:] * f + size / 2
            images.append(rgb)
            kps.append(uv)
            meta.append((clip, i, view))
Path("/tmp/ll/mp").mkdir(parents=True, exist_ok=True)
np.savez_compressed(
    "/tmp/ll/mp/renders.npz",
    images=np.stack(images),
    kps=np.stack(kps),
    names=np.array([m[0] for m in meta]),
)
print(len(images))
