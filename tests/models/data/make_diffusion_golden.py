"""Record diffusion sampling outputs of a fixed model, for the old-vs-new check.

``diffusion_golden.safetensors`` was written by this script at commit 0b44476
(``DiffusionDecoder`` then held the DDIM loop, the hypotheses and their
aggregation). ``tests/models/test_sampling.py`` loads the same weights into the
current code and requires the same outputs, so refactoring the sampler cannot
change what a trained model predicts. The script uses that commit's API and is
kept as the record of how the file was made; re-running it needs that commit::

    git worktree add /tmp/old 0b44476 && cd /tmp/old
    PYTHONPATH=. python <this file> OUT.safetensors
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from unihpr.models import UniHPR, UniHPRConfig
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.schedules import LinearSchedule

CONFIG = {
    "num_joints": 5, "embed_dim": 16, "image_size": (32, 32), "image_backbone": "hrnet_tiny",
    "pose_width": 16, "pose_depth": 1, "pose_heads": 2, "decoder": "diffusion",
    "decoder_width": 16, "decoder_depth": 1, "decoder_heads": 2,
    "diffusion_train_steps": 50, "diffusion_sampling_steps": 7,
}  # fmt: skip


def main(path: str) -> None:
    torch.manual_seed(0)
    model = UniHPR(UniHPRConfig(**CONFIG)).eval()
    linear = DiffusionDecoder(5, 3, 16, width=16, depth=1, num_heads=2,
                              schedule=LinearSchedule(40), num_sampling_steps=5,
                              target_scale=0.5).eval()  # fmt: skip
    g = torch.Generator().manual_seed(1)
    pose2d = torch.rand(3, 5, 2, generator=g) * 100
    bbox = torch.tensor([[0.0, 0.0, 100.0, 100.0]]).repeat(3, 1)
    pose3d = torch.randn(3, 5, 3, generator=g) * 0.3
    out = {"in/pose2d": pose2d, "in/bbox": bbox, "in/pose3d": pose3d}
    with torch.no_grad():
        emb = model.encode_pose2d(pose2d, bbox=bbox)
        out["in/embedding"] = emb
        out["out/estimate_3d"] = model.estimate_3d(pose2d=pose2d, bbox=bbox)
        pose, hyps = model.decoder3d(
            emb, "pose2d", num_hypotheses=4, aggregation="median",
            generator=torch.Generator().manual_seed(7), return_hypotheses=True,
        )  # fmt: skip
        out["out/median_pose"], out["out/median_hyps"] = pose, hyps
        out["out/estimate_2d"] = model.estimate_2d(pose3d=pose3d, num_steps=3, num_hypotheses=3)
        out["out/interpolate"] = model.interpolate(pose3d[:2], pose3d[1:], steps=3)
        out["out/linear"] = linear(emb, "image", num_hypotheses=2)
    keep = ("pose2d_encoder.", "pose3d_encoder.", "decoder3d.", "decoder2d.")
    state = {f"model/{k}": v for k, v in model.state_dict().items() if k.startswith(keep)}
    state.update({f"linear/{k}": v for k, v in linear.state_dict().items()})
    save_file({k: v.contiguous() for k, v in {**state, **out}.items()}, path)


if __name__ == "__main__":
    main(sys.argv[1])
