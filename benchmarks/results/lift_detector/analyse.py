import json
from pathlib import Path

import numpy as np

rows = json.loads(Path("/tmp/ll/mp/detections.json").read_text())
H = {
    "root": 0,
    "chest": 1,
    "neck": 2,
    "rhip": 3,
    "rknee": 4,
    "rank": 5,
    "rsho": 6,
    "relb": 7,
    "rwri": 8,
    "lhip": 9,
    "lknee": 10,
    "lank": 11,
    "lsho": 12,
    "lelb": 13,
    "lwri": 14,
}
M = {
    "lsho": 11,
    "rsho": 12,
    "lelb": 13,
    "relb": 14,
    "lwri": 15,
    "rwri": 16,
    "lhip": 23,
    "rhip": 24,
    "lknee": 25,
    "rknee": 26,
    "lank": 27,
    "rank": 28,
}
stats = {k: [] for k in ("hip_ratio", "sho_ratio", "hip_up", "sho_up", "err_limb", "swapped")}
for r in rows:
    det, gt = np.array(r["det"])[:, :2], np.array(r["gt"])
    side = (gt.max(0) - gt.min(0)).max()
    torso = gt[H["neck"]] - gt[H["root"]]
    tl = np.linalg.norm(torso)
    up = torso / tl
    e = {k: np.linalg.norm(det[M[k]] - gt[H[k]]) for k in M}
    sw = {
        k: np.linalg.norm(det[M[("r" + k[1:]) if k[0] == "l" else ("l" + k[1:])]] - gt[H[k]])
        for k in M
    }
    swapped = sum(sw.values()) < sum(e.values())
    stats["swapped"].append(swapped)
    if swapped:
        continue
    gh = np.linalg.norm(gt[H["lhip"]] - gt[H["rhip"]])
    gs = np.linalg.norm(gt[H["lsho"]] - gt[H["rsho"]])
    if gh > 0.25 * tl:  # near-frontal enough for a width ratio
        stats["hip_ratio"].append(np.linalg.norm(det[M["lhip"]] - det[M["rhip"]]) / gh)
    if gs > 0.25 * tl:
        stats["sho_ratio"].append(np.linalg.norm(det[M["lsho"]] - det[M["rsho"]]) / gs)
    dh = 0.5 * (det[M["lhip"]] + det[M["rhip"]]) - 0.5 * (gt[H["lhip"]] + gt[H["rhip"]])
    ds = 0.5 * (det[M["lsho"]] + det[M["rsho"]]) - 0.5 * (gt[H["lsho"]] + gt[H["rsho"]])
    stats["hip_up"].append(dh @ up / tl)
    stats["sho_up"].append(ds @ up / tl)
    stats["err_limb"].append(np.mean([e[k] for k in e if k[1:] not in ("hip", "sho")]) / side)
out = {}
for k, v in stats.items():
    v = np.array(v, dtype=float)
    out[k] = (len(v), float(np.mean(v)), float(np.median(v)) if len(v) else None, float(np.std(v)))
    print(
        f"{k:10s} n={len(v):4d} mean={np.mean(v):.3f} median={np.median(v):.3f} std={np.std(v):.3f}"
    )
Path("/tmp/ll/mp/offsets.json").write_text(json.dumps(out, indent=1))
