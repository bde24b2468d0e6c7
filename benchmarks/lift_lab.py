"""Temporal and robust lifting experiments on the bundled mocap clips (issue #21's log).

One run trains one lifter on windows of the training clips seen through fresh
virtual cameras (`ClipWindows` of `benchmarks/lift_data.py`) and scores it on the
held-out clips (`DEFAULT_TEST_CLIPS`: dance_b, getup_faceup, kick, walk) at
their native frame rate, each clip seen whole by 4 fixed, seeded cameras of the
rendered test set's ranges (466 frames x 4 = 1,864 samples). Conditions: clean
2D; 20% of the joints occluded (confidence 0 and moved by up to 30% of the
box); 10% of the frames with nothing visible; "coco": the chest and neck made from
the hips and shoulders as ``lift`` does for coco17 / mediapipe33 keypoints and the
hips 20% wider (a synthetic detector convention, not a measured one); "mediapipe":
the same trunk with the hips and shoulders where MediaPipe put them on renders of
the humanoid (``MEDIAPIPE_OFFSETS``, measured). Rows are appended as JSON lines
to ``benchmarks/results/lift_lab.jsonl``; ``--summary`` prints mean ± std over
seeds per experiment name.

    python benchmarks/lift_lab.py T27 --model temporal --window 27 --seeds 0 1 2
    python benchmarks/lift_lab.py MLP --model mlp --seeds 0 1 2
    python benchmarks/lift_lab.py --summary
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

LOG = Path(__file__).parent / "results" / "lift_lab.jsonl"
CONDITIONS = ("clean", "occ20", "miss10", "coco", "mediapipe")
# MediaPipe's hips and shoulders on renders of the humanoid (medians of
# results/lift_detector/offsets.json): hip distance 0.786x, shoulder distance
# 0.824x, shoulders 5.5% of the torso towards the hips.
MEDIAPIPE_OFFSETS = (0.786 - 1, 0.824 - 1, 0.055)
# detector_convention's (hip widening, shoulder widening, shoulder drop) per condition
CONVENTIONS = {"coco": (0.2, 0.0, 0.0), "mediapipe": MEDIAPIPE_OFFSETS}
TEST_CAMERAS = 4


def load_clips(split):
    from unihpr.data.mocap import (
        DEFAULT_TEST_CLIPS,
        humanoid_forward_kinematics,
        list_mocap_clips,
        load_mocap_clip,
    )

    clips, fps = {}, {}
    for c in list_mocap_clips():
        if (c in DEFAULT_TEST_CLIPS) == (split == "test"):
            frames = load_mocap_clip(c)
            clips[c] = humanoid_forward_kinematics(frames)
            fps[c] = 1.0 / float(frames[0, 0])
    return clips, fps


def test_sequences():
    """[(clip, pose2d (N, 15, 2), pose3d (N, 15, 3))] through fixed seeded cameras."""
    from unihpr.data.virtual_cameras import CameraDistribution, project_to_camera, sample_cameras

    dist = CameraDistribution(elevation=(-5.0, 25.0), distance=(3.5, 6.0), roll=(0.0, 0.0))
    g = torch.Generator().manual_seed(2021)
    out = []
    for clip, world in sorted(load_clips("test")[0].items()):
        w = torch.as_tensor(world)
        for _ in range(TEST_CAMERAS):
            cam = sample_cameras(w[:, 0].mean(0, keepdim=True), dist, g)
            c3, uv = project_to_camera(w.reshape(1, -1, 3), cam)
            c3, uv = c3.view(-1, 15, 3), uv.view(-1, 15, 2)
            out.append((clip, uv.float(), (c3 - c3[:, :1]).float()))
    return out


def corrupt_test(pose2d, condition, seed):
    """Test-time corruption: (pose2d, visible) of one sequence."""
    from unihpr.geometry import bbox_from_keypoints

    g = torch.Generator().manual_seed(seed)
    n, j, _ = pose2d.shape
    vis = torch.ones(n, j, dtype=torch.bool)
    if condition == "occ20":
        hide = torch.rand(n, j, generator=g) < 0.2
        box = bbox_from_keypoints(pose2d)
        side = (box[:, 2:] - box[:, :2]).amax(-1)[:, None]
        ang = 2 * math.pi * torch.rand(n, j, generator=g)
        dist = 0.3 * side * torch.rand(n, j, generator=g)
        step = torch.stack([ang.cos(), ang.sin()], -1) * dist[..., None]
        pose2d = torch.where(hide[..., None], pose2d + step, pose2d)
        vis = ~hide
    elif condition == "miss10":
        vis = vis & (torch.rand(n, 1, generator=g) >= 0.1)
    elif condition in CONVENTIONS:
        from lift_data import detector_convention

        hip, sho, drop = (torch.full((1,), v) for v in CONVENTIONS[condition])
        pose2d = detector_convention(pose2d[None], hip, sho, drop)[0]
    return pose2d, vis


class MaskedMLP(nn.Module):
    """SimpleBaseline (1024 wide, 2 residual blocks, dropout 0.5) given the visibility:
    input = box-normalised visible keypoints (0 where hidden) and the mask."""

    def __init__(self, j=15, width=1024, dropout=0.5):
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(3 * j, width), nn.BatchNorm1d(width), nn.ReLU(),
                                 nn.Dropout(dropout))  # fmt: skip
        self.blocks = nn.ModuleList(
            nn.Sequential(*[m for _ in range(2) for m in (nn.Linear(width, width),
                          nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout))])
            for _ in range(2)
        )  # fmt: skip
        self.out = nn.Linear(width, 3 * j)
        self.j = j

    def forward(self, pose2d, visible):
        from unihpr.geometry import normalize_pose2d

        lead = pose2d.shape[:-2]
        p, v = pose2d.reshape(-1, self.j, 2), visible.reshape(-1, self.j)
        x = normalize_pose2d(p, None, v)[0]
        h = self.inp(torch.cat([x.flatten(1), v.float()], -1))
        for blk in self.blocks:
            h = h + blk(h)
        out = self.out(h).view(*lead, self.j, 3)
        return out - out[..., :1, :]


class ShippedSingleFrame(nn.Module):
    """A UniHPR model (e.g. the shipped single-frame ``unihpr-tiny-mocap``) per frame."""

    def __init__(self, name):
        super().__init__()
        from unihpr.models import from_pretrained

        self.net = from_pretrained(name).eval()

    def forward(self, pose2d, visible):
        from unihpr.geometry import bbox_from_keypoints

        p = torch.where(visible[..., None], pose2d, torch.zeros_like(pose2d))
        box = bbox_from_keypoints(p, visible)
        return self.net.estimate_3d(pose2d=p, bbox=box, mask=visible)


def build_model(args):
    if args.model == "mlp":
        return MaskedMLP()
    from unihpr.models.temporal import TemporalLifter, TemporalLifterConfig

    window = 1 if args.model == "single" else args.window
    return TemporalLifter(TemporalLifterConfig(window=window, **_kv(args.override)))


def _kv(items):
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        out[k] = json.loads(v)
    return out


def build_data(args):
    from lift_data import ClipWindows, Occlusion, WindowAugmentation

    from unihpr.data import HUMANOID15
    from unihpr.data.virtual_cameras import CameraDistribution

    clips, fps = load_clips("train")
    off = set(args.off or [])
    aug = _kv(args.aug)
    for name in ("bone_scale", "body_scale", "limb_swap", "limb_angle", "mirror"):
        if name in off:
            aug[name] = 0.0
    occ = None if "occlusion" in off else Occlusion(**_kv(args.occ))
    cams = (CameraDistribution() if "cameras" in off else
            CameraDistribution(elevation=(-15.0, 40.0), distance=(2.5, 8.0), roll=(-15.0, 15.0),
                               focal=(600.0, 2000.0)))  # fmt: skip
    window = args.window if args.model == "temporal" else 1
    return ClipWindows(clips, fps, HUMANOID15, window,
                       speed=(1.0, 1.0) if "speed" in off else (0.5, 2.0), cameras=cams,
                       augment=WindowAugmentation(**aug), occlusion=occ)  # fmt: skip


STRIDE = {"value": None}  # lift_frames stride of this run (--stride)
FLIP = {"value": False}  # test-time flip averaging (--flip)


def _predict_once(model, pose2d, visible):
    from unihpr.models.temporal import TemporalLifter, lift_frames

    if isinstance(model, TemporalLifter):
        return lift_frames(model, pose2d, visible, stride=STRIDE["value"])
    return model(pose2d, visible)


def predict(model, pose2d, visible):
    from unihpr.data import HUMANOID15, flip_pose

    model.eval()
    with torch.no_grad():
        out = _predict_once(model, pose2d, visible)
        if FLIP["value"]:  # the mirrored input's answer, mirrored back
            perm = list(HUMANOID15.flip_permutation)
            back = _predict_once(model, flip_pose(pose2d, HUMANOID15), visible[..., perm])
            out = 0.5 * (out + flip_pose(back, HUMANOID15))
        return out


def evaluate(model, seqs):
    from unihpr.metrics import mpjpe, pa_mpjpe

    res = {}
    for cond in CONDITIONS:
        per_clip, samples, accel = {}, {"mpjpe": [], "pa_mpjpe": []}, {}
        for k, (clip, p2, p3) in enumerate(seqs):
            p, v = corrupt_test(p2, cond, 100 + k)
            pred = predict(model, p, v)
            for name, fn in (("mpjpe", mpjpe), ("pa_mpjpe", pa_mpjpe)):
                e = 1000 * fn(pred, p3, reduction="none")
                samples[name].append(e)
                per_clip.setdefault((clip, name), []).append(e)
            a = (pred[2:] - 2 * pred[1:-1] + pred[:-2]) - (p3[2:] - 2 * p3[1:-1] + p3[:-2])
            accel.setdefault(clip, []).append(1000 * a.norm(dim=-1).mean())
        clips = sorted({c for c, _ in per_clip})
        for name in ("mpjpe", "pa_mpjpe"):
            res[f"{cond}_{name}_sample"] = float(torch.cat(samples[name]).mean())
            res[f"{cond}_{name}_clip"] = statistics.mean(
                float(torch.cat(per_clip[(c, name)]).mean()) for c in clips
            )
        res[f"{cond}_accel_clip"] = statistics.mean(float(torch.stack(accel[c]).mean())
                                                   for c in clips)  # fmt: skip
    return res


def mean_pose_row(args, seqs):
    data = build_data(argparse.Namespace(**{**vars(args), "model": "single"}))
    g = torch.Generator().manual_seed(0)
    mean = torch.cat([data.sample(500, g)["pose3d"][:, 0] for _ in range(20)]).mean(0)

    class Mean(nn.Module):
        def forward(self, p, v):
            return mean.expand(p.shape[0], -1, -1)

    return evaluate(Mean(), seqs)


def speed(model, frames=1000):
    g = torch.Generator().manual_seed(0)
    p = 400 + 200 * torch.rand(frames, 15, 2, generator=g)
    v = torch.rand(frames, 15, generator=g) > 0.1
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        predict(model, p, v)
        best = min(best, time.perf_counter() - t)
    return frames / best


def train(args, seed, data):
    torch.manual_seed(seed)
    model = build_model(args)
    if args.init:  # start from a saved lifter: every tensor of the same shape, time_embed broadcast
        from unihpr.models.temporal import TemporalLifter

        src = TemporalLifter.from_pretrained(args.init).state_dict()
        own = model.state_dict()
        for k, v in src.items():
            own[k] = v if v.shape == own[k].shape else v.expand_as(own[k]).clone()
        model.load_state_dict(own)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    warm = max(args.steps // 20, 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    )
    per_step = args.frames // data.window
    model.train()
    for step in range(args.steps):
        b = data.sample(per_step, g)
        pred = model(b["pose2d"], b["visible"])
        loss = (pred - b["pose3d"]).norm(dim=-1).mean()
        if data.window > 1 and args.w_vel:
            dv = (pred[:, 1:] - pred[:, :-1]) - (b["pose3d"][:, 1:] - b["pose3d"][:, :-1])
            loss = loss + args.w_vel * dv.norm(dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            print(f"  step {step} loss {loss.item():.4f}", flush=True)
    return model.eval()


def summary(names=None):
    rows = {}
    for line in LOG.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["name"], []).append(r)
    keys = [f"{c}_{m}" for c in CONDITIONS for m in ("mpjpe_clip", "pa_mpjpe_clip")]
    keys += ["clean_mpjpe_sample", "clean_accel_clip", "occ20_accel_clip", "miss10_accel_clip"]
    print("| row | " + " | ".join(keys) + " | fps | budget | n |")
    print("|---" * (len(keys) + 4) + "|")
    for name, rs in rows.items():
        if names and name not in names:
            continue
        cells = []
        for k in keys:
            v = [r["result"][k] for r in rs if k in r["result"]]
            if not v:
                cells.append("–")
                continue
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.1f} ± {sd:.1f}")
        fps = rs[0]["result"].get("fps")
        a = rs[0]["args"]
        budget = "–" if a["model"] in ("mean", "tiny") else f"{a['steps']}×{a['frames']} fr"
        if a.get("eval"):
            budget = f"re-scored {Path(a['eval']).name}"
        print(f"| {name} | " + " | ".join(cells) + f" | {fps or 0:.0f} | {budget} | {len(rs)} |")


def parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="experiment name (the row of the summary)")
    p.add_argument(
        "--summary", nargs="*", help="print mean ± std per name (all, or the names given)"
    )
    p.add_argument(
        "--model", choices=("temporal", "single", "mlp", "mean", "tiny"), default="temporal",
        help="what to train: the temporal lifter, its window-1 form, the MLP, the mean pose, "
        "or score unihpr-tiny-mocap",
    )  # fmt: skip
    p.add_argument("--window", type=int, default=27, help="frames per window")
    p.add_argument("--steps", type=int, default=1500, help="optimiser steps")
    p.add_argument("--frames", type=int, default=432, help="2D-3D frames per step")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--w-vel", type=float, default=0.5, help="velocity loss weight (temporal)")
    p.add_argument("--off", nargs="*", help="switch off: occlusion bone_scale body_scale "
                   "limb_swap limb_angle mirror cameras speed")  # fmt: skip
    p.add_argument("--aug", nargs="*", help="WindowAugmentation fields k=v")
    p.add_argument("--occ", nargs="*", help="Occlusion fields k=v")
    p.add_argument("--override", nargs="*", help="TemporalLifterConfig fields k=v")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed")
    p.add_argument("--save", help="save_pretrained folder of the first seed's model")
    p.add_argument("--save-dir", help="save every seed's model to SAVE_DIR/seed<n>")
    p.add_argument("--eval", help="score a saved TemporalLifter folder (no training)")
    p.add_argument("--stride", type=int, help="lift_frames stride (default: the window)")
    p.add_argument("--flip", action="store_true", help="average with the mirrored input's answer")
    p.add_argument(
        "--init", help="initialise from a saved TemporalLifter (e.g. a single-frame one)"
    )
    return p


def run_seed(args, seed, seqs):
    """Train (or load) one row's model for one seed and score it: the result dict."""
    t0 = time.perf_counter()
    if args.model == "mean":
        return mean_pose_row(args, seqs)
    if args.model == "tiny":
        model = ShippedSingleFrame(args.eval or "unihpr-tiny-mocap")
        return {**evaluate(model, seqs), "fps": speed(model)}
    if args.eval:
        from unihpr.models.temporal import TemporalLifter

        model = TemporalLifter.from_pretrained(args.eval)
        return {**evaluate(model, seqs), "fps": speed(model)}
    model = train(args, seed, build_data(args))
    res = {"train_seconds": time.perf_counter() - t0}
    res.update(evaluate(model, seqs))
    res["fps"] = speed(model)
    if args.save and seed == args.seeds[0]:
        model.save_pretrained(args.save)
    if args.save_dir:
        folder = Path(args.save_dir, f"seed{seed}")
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(folder)
        else:
            torch.save(model.state_dict(), folder / "mlp.pt")
    return res


def main(argv=None):
    args = parser().parse_args(argv)
    if args.summary is not None:
        summary(args.summary)
        return 0
    torch.set_num_threads(1)
    STRIDE["value"], FLIP["value"] = args.stride, args.flip
    seqs = test_sequences()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        res = run_seed(args, seed, seqs)
        with LOG.open("a") as f:
            f.write(json.dumps({"name": args.name, "seed": seed, "args": vars(args),
                                "result": res}) + "\n")  # fmt: skip
        print(args.name, seed, {k: round(v, 1) for k, v in res.items()}, flush=True)
        if args.model in ("mean", "tiny") or args.eval:
            break
    summary([args.name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
