"""Small, seeded lifting experiments on the bundled mocap clips (issue #16's log).

Each run trains one lifter (the SimpleBaseline MLP or the UniHPR 2D encoder +
3D decoder, optionally after step 1 and with the contrastive term) and scores
it on the held-out clips, per sample and per clip. Results are appended as
JSON lines to ``benchmarks/results/learn_lab.jsonl``; ``--summary`` prints
mean ± std per experiment name. Accuracy depends only on the seed and the
arguments, never on machine load (wall times do).

    python benchmarks/learn_lab.py NAME --model unihpr --readout tokens --seeds 0 1 2
    python benchmarks/learn_lab.py --summary
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

LOG = Path(__file__).parent / "results" / "learn_lab.jsonl"


def _parse_kv(items):
    out = {}
    for item in items or []:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def build_data(args, kind=None):
    from unihpr.data import HUMANOID15, HumanoidMocap
    from unihpr.data.augment import PoseAugmentation
    from unihpr.data.mocap import load_humanoid_motion
    from unihpr.data.virtual_cameras import CameraDistribution, VirtualCameraDataset

    kw = {"progress": False, "cameras_per_frame": args.views}
    if args.colours:
        kw["side_colours"] = True
    if args.recombined:
        kw["recombined"] = args.recombined
    test = HumanoidMocap("test", **{**kw, "cameras_per_frame": 2, "recombined": 0})
    kind = kind or args.data
    if kind == "with-poses":
        from unihpr.data.virtual_cameras import WithPoses

        return WithPoses(build_data(args, "rendered")[0], build_data(args, "virtual")[0]), test
    if kind == "rendered":
        from unihpr.data.augment import RandomFlip

        train = HumanoidMocap("train", **kw)
        if args.flip:
            swap = (0, 2) if args.colours else None
            train = RandomFlip(train, HUMANOID15, p=args.flip, swap_channels=swap)
    else:
        motion, clips, frames = load_humanoid_motion("train")
        aug = PoseAugmentation(**_parse_kv(args.aug))
        cams = CameraDistribution(**_parse_kv(args.cams))
        train = VirtualCameraDataset(motion, HUMANOID15, cameras=cams,
                                     augment=aug if aug.active else None, clips=clips,
                                     frames=frames)  # fmt: skip
    return train, test


def score(pred, target, actions):
    from unihpr.metrics import mpjpe, pa_mpjpe, per_action_error

    out = {}
    for name, fn in (("mpjpe", mpjpe), ("pa_mpjpe", pa_mpjpe)):
        out[f"{name}_sample"] = 1000 * float(fn(pred, target))
        out[f"{name}_clip"] = 1000 * per_action_error(pred, target, actions, name)["average"]
    return out


def run_one(args, seed, train, test, train1=None):
    from unihpr.demo.baselines import LifterStage, SimpleBaselineLifter
    from unihpr.models import create_model
    from unihpr.train import LossConfig, StageConfig, Trainer, seed_everything
    from unihpr.train.distributed import DistInfo
    from unihpr.train.stages import make_stage

    tmp = Path(tempfile.mkdtemp(prefix="lab"))
    common = {"lr": args.lr, "lr_schedule": args.sched, "log_every": 50,
              "checkpoint_every": 10**6}  # fmt: skip
    t0 = time.perf_counter()
    seed_everything(seed)

    def fit(stage, cfg, name, data=None):
        Trainer(stage, data or train, cfg, output_dir=tmp / name, seed=seed, amp="off",
                dist_info=DistInfo(), progress=False).fit(resume=False)  # fmt: skip

    batch = torch.utils.data.default_collate([test[i] for i in range(len(test))])
    if args.model == "mean":
        from unihpr.demo.baselines import MeanPose

        poses = torch.stack([train[i]["pose3d"] for i in range(len(train))])
        pred, extra = MeanPose(poses)(len(test)), {}
    elif args.model == "image":
        model = create_model("unihpr-tiny", **_parse_kv(args.override))

        class ImageStage(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def trainable_parameters(self):
                return [*model.image_encoder.parameters(), *model.decoder3d.parameters()]

            def forward(self, b, generator=None):
                emb = model.encode_image(b["image"])
                return model.decoder3d.loss(emb, "image", b["pose3d"]), {}

        c3 = StageConfig(name="finetune", steps=args.s3, batch_size=args.b, **common)
        fit(ImageStage(), c3, "img")
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model.estimate_3d(image=batch["image"][i : i + 256])
                              for i in range(0, len(test), 256)])  # fmt: skip
            base = getattr(train, "dataset", train)  # unflipped training samples
            tb = torch.utils.data.default_collate([base[i] for i in range(0, len(base), 3)])
            tp = model.estimate_3d(image=tb["image"])
        # the silhouette of a pose equals that of its depth-mirrored, left/right-swapped
        # twin (facing the camera vs facing away): error against the closer of the two
        from unihpr.data import HUMANOID15
        from unihpr.metrics import mpjpe

        gt = batch["pose3d"]
        twin = gt[:, list(HUMANOID15.flip_permutation)].clone()
        twin[..., 2] = -twin[..., 2]
        e1 = mpjpe(pred, gt, reduction="none")
        e2 = mpjpe(pred, twin, reduction="none")
        extra = {"train_mpjpe_sample": 1000 * float(mpjpe(tp, tb["pose3d"])),
                 "twin_mpjpe_sample": 1000 * float(torch.minimum(e1, e2).mean()),
                 "twin_share": float((e2 < e1).float().mean())}  # fmt: skip
    elif args.model == "mlp":
        lifter = SimpleBaselineLifter(15, dropout=args.dropout)
        cfg = StageConfig(name="finetune", steps=args.s1 + args.s3, batch_size=args.b, **common)
        fit(LifterStage(lifter, cfg), cfg, "mlp")
        lifter.eval()
        with torch.no_grad():
            pred = lifter(batch["pose2d"])
        extra = {}
    else:
        model = create_model("unihpr-tiny", **_parse_kv(args.override))
        if args.s1:
            c1 = StageConfig(name="align2d3d", steps=args.s1, batch_size=args.b1 or args.b,
                             loss=LossConfig(tau_init=1 / 14, tau_min=1 / 100), **common)  # fmt: skip
            fit(make_stage(model, c1), c1, "s1", train1)
        c3 = StageConfig(name="finetune", steps=args.s3, batch_size=args.b,
                         loss=LossConfig(tau_init=0.2, tau_min=0.2), contrastive_weight=args.cl,
                         loss_2d_weight=args.w2d, loss_balance=args.balance, **common)  # fmt: skip
        stage = make_stage(model, c3, modalities=("pose2d", "pose3d"),
                           decode_from=tuple(args.decode_from))  # fmt: skip
        fit(stage, c3, "s3")
        model.eval()
        with torch.no_grad():
            e2 = model.encode_pose2d(batch["pose2d"])
            e3 = model.encode_pose3d(batch["pose3d"])
            pred = model.decoder3d(e2, "pose2d")
            cos = float((e2 * e3).sum(-1).mean())
            top1 = float(((e2 @ e3.T).argmax(1) == torch.arange(len(e2))).float().mean())
        extra = {"cos_2d3d": cos, "top1_2d3d": 100 * top1}
    res = score(pred, batch["pose3d"], list(batch["action"]))
    res.update(extra)
    res["seconds"] = time.perf_counter() - t0
    return res


def summary(names=None, markdown=False):
    rows: dict[str, list] = {}
    for line in LOG.read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(r["name"], []).append(r)
    for name, rs in rows.items():
        if names and name not in names:
            continue
        keys = ["mpjpe_clip", "pa_mpjpe_clip", "mpjpe_sample", "pa_mpjpe_sample"]
        cells = []
        for k in keys:
            v = [r["result"][k] for r in rs]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):6.1f} ± {sd:4.1f}")
        extra = ""
        if "cos_2d3d" in rs[0]["result"]:
            extra = " cos {:.2f} top1 {:.0f}%".format(
                statistics.mean(r["result"]["cos_2d3d"] for r in rs),
                statistics.mean(r["result"]["top1_2d3d"] for r in rs),
            )
        if "train_mpjpe_sample" in rs[0]["result"]:
            extra += " train {:.0f}".format(
                statistics.mean(r["result"]["train_mpjpe_sample"] for r in rs)
            )
        if "twin_mpjpe_sample" in rs[0]["result"]:
            extra += " twin-min {:.0f} (closer to twin {:.0%})".format(
                statistics.mean(r["result"]["twin_mpjpe_sample"] for r in rs),
                statistics.mean(r["result"]["twin_share"] for r in rs),
            )
        if markdown:
            print(f"| {name} | " + " | ".join(cells) + f" | {extra.strip() or '–'} | {len(rs)} |")
        else:
            print(f"{name:40s} n={len(rs)} | " + " | ".join(cells) + extra)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name", nargs="?", help="experiment name (its rows in learn_lab.jsonl)")
    p.add_argument(
        "--summary", nargs="*", help="print the table of these experiments (all: none given)"
    )
    p.add_argument("--markdown", action="store_true", help="summary as Markdown table rows")
    p.add_argument("--model", choices=("mlp", "unihpr", "image", "mean"), default="unihpr",
                   help="what is trained: MLP lifter, UniHPR, image -> 3D, or the mean pose")  # fmt: skip
    p.add_argument("--views", type=int, default=2, help="rendered views per frame (train)")
    p.add_argument("--colours", action="store_true", help="side-coloured renders")
    p.add_argument("--recombined", type=int, default=0, help="recombined training frames")
    p.add_argument("--flip", type=float, default=0.0, help="RandomFlip probability (images)")
    p.add_argument("--data", choices=("rendered", "virtual", "with-poses"), default="rendered",
                   help="fixed rendered pairs, fresh virtual cameras, or renders with a fresh pair")  # fmt: skip
    p.add_argument("--aug", nargs="*", help="PoseAugmentation fields k=v")
    p.add_argument("--cams", nargs="*", help="CameraDistribution fields k=v")
    p.add_argument("--override", nargs="*", help="UniHPRConfig fields k=v")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run")
    p.add_argument("--s1", type=int, default=0, help="step-1 steps (0: no step 1)")
    p.add_argument("--data1", choices=("rendered", "virtual"), help="stage-1 data (default --data)")
    p.add_argument("--b1", type=int, default=0, help="step-1 batch size (0: --b)")
    p.add_argument("--s3", type=int, default=1500, help="fine-tuning (or supervised) steps")
    p.add_argument("--b", type=int, default=64, help="batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate")
    p.add_argument("--sched", default="constant", help="StageConfig.lr_schedule")
    p.add_argument("--cl", type=float, default=0.0, help="contrastive weight in fine-tuning")
    p.add_argument("--w2d", type=float, default=0.0, help="L_2D weight in fine-tuning")
    p.add_argument("--balance", default="fixed", help="StageConfig.loss_balance")
    p.add_argument("--decode-from", nargs="+", default=["pose2d"],
                   help="embeddings the fine-tuning decoders learn from")  # fmt: skip
    p.add_argument("--dropout", type=float, default=0.5, help="MLP lifter dropout")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = p.parse_args(argv)
    if args.summary is not None:
        summary(args.summary, args.markdown)
        return 0
    torch.set_num_threads(args.threads)
    train, test = build_data(args)
    train1 = build_data(args, args.data1)[0] if args.data1 else None
    LOG.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        res = run_one(args, seed, train, test, train1)
        rec = {"name": args.name, "seed": seed, "args": vars(args), "result": res}
        with LOG.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        print(args.name, seed, {k: round(v, 1) for k, v in res.items()}, flush=True)
    summary([args.name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
