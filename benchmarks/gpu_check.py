"""One GPU check of the loss engine: correctness, speed, memory, training steps, host syncs.

Meant for one NVIDIA H100/H200-class GPU, where it finishes in about five
minutes (every section runs under a time budget and is skipped, with a note,
once the budget is spent). It prints a table per section and writes JSON:

1. ``exact_correctness``: the exact all-negatives Triplet-InfoNCE, Triton
   kernels against the chunked PyTorch path (float32, D = 512,
   B ∈ {64, 512, 2048}): the loss, the λ1 means and the gradients w.r.t. the
   three similarity matrices and τ, as max |difference| relative to the
   largest reference entry.
2. ``exact_speed``: forward+backward time and peak memory of the exact mode,
   Triton and chunked PyTorch, B ∈ {180, 2048}.
3. ``sampled_speed``: forward+backward time and peak memory of the sampled
   ``ContrastiveLoss`` against three ``PairInfoNCE`` on the same embeddings,
   B ∈ {180, 2048}; with ``backend="compile"`` too unless ``--no-compile``.
4. ``train_steps``: samples/s of a stage-1 step (B = 2048) and a stage-3 step
   (B = 180) of ``unihpr-w32`` with bf16 autocast.
5. ``host_syncs``: ``torch.cuda.set_sync_debug_mode("warn")`` around a
   ``ContrastiveLoss`` forward+backward with ``validate=False`` and around
   quiet ``Trainer`` steps (no logging, no validation) of stages 2 and 3;
   every synchronising call is listed with its source line.

Targets reported (pass/fail): exact forward+backward at B = 2048 under
100 ms; Triton at least 5× the chunked PyTorch path; sampled
``ContrastiveLoss`` at most 1.2× three ``PairInfoNCE``; no host sync in the
loss step.

Without CUDA the script exits at once with a message (status 2).
``--device cpu --tiny`` runs every section at toy sizes on the CPU (the Triton
kernels under ``TRITON_INTERPRET=1``, host syncs found by
``tests/host_syncs.py``), to test the script itself: its numbers say
nothing about a GPU.

Usage:
    python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json]
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, time_fn, write_json

NO_CUDA_MESSAGE = (
    "gpu_check: no CUDA device is visible (torch.cuda.is_available() is False).\n"
    "This script measures the GPU paths of the losses; run it on a machine with an NVIDIA "
    "GPU and a CUDA build of torch (pip install unihpr[triton] for the Triton kernels),\n"
    "or run `python benchmarks/gpu_check.py --device cpu --tiny` to exercise its logic "
    "on the CPU (toy sizes, no meaningful numbers)."
)

FULL = {
    "dim": 512,
    "exact_correctness_B": [64, 512, 2048],
    "speed_B": [180, 2048],
    "model": "unihpr-w32",
    "stage1_B": 2048,
    "stage3_B": 180,
    "repeat": 5,
    "train_steps": 3,
}
TINY = {
    "dim": 16,
    "exact_correctness_B": [8, 16],
    "speed_B": [8, 12],
    "model": "unihpr-tiny",
    "stage1_B": 16,
    "stage3_B": 8,
    "repeat": 1,
    "train_steps": 1,
}
TARGETS = {
    "exact_ms_B2048": 100.0,
    "triton_speedup": 5.0,
    "contrastive_vs_pairs": 1.2,
}


class Budget:
    """Wall-clock budget shared by the sections; a section that would start late is skipped."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds
        self.skipped: list[str] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, what: str, needs: float = 0.0) -> bool:
        left = self.seconds - self.elapsed()
        if left < needs:
            self.skipped.append(f"{what}: skipped, {left:.0f} s of the budget left")
            return False
        return True


class Runner:
    """Device, timing and memory helpers of one check."""

    def __init__(self, device: torch.device, repeat: int) -> None:
        self.device = device
        self.repeat = repeat

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def measure(self, fn: Callable[[], object], repeat: int | None = None) -> dict:
        """Median time (ms) after one warm-up call, and the peak extra memory (MiB, CUDA).

        The memory-tracked call is also the first timing sample, so ``repeat=1``
        costs two calls in all (for the slow configurations).
        """
        fn()  # warm-up: kernels compiled, allocator primed
        peak = None
        self.sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
        t0 = time.perf_counter()
        fn()
        self.sync()
        times = [(time.perf_counter() - t0) * 1e3]
        if self.device.type == "cuda":
            peak = (torch.cuda.max_memory_allocated(self.device) - base) / 2**20
        n = (repeat or self.repeat) - 1
        if n > 0:
            times += [time_fn(fn, self.device, repeat=1, warmup=0) for _ in range(n)]
        times.sort()
        return {"ms": times[len(times) // 2], "peak_mib": peak}


def _sims(B: int, dim: int, device: torch.device, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(B, dim, generator=g)
    xs = [
        torch.nn.functional.normalize(base + torch.randn(B, dim, generator=g), dim=1).to(device)
        for _ in range(3)
    ]
    return [xs[0] @ xs[1].T, xs[0] @ xs[2].T, xs[1] @ xs[2].T]


def _exact(sims: list[torch.Tensor], backend: str, chunk_size: int | None = None):
    from unihpr.ops import exact_triplet_info_nce

    s = [t.detach().clone().requires_grad_() for t in sims]
    tau = torch.full((), 0.2, device=s[0].device, requires_grad=True)
    loss, lam_pos, lam_neg = exact_triplet_info_nce(
        *s, tau, chunk_size=chunk_size, backend=backend, validate=False
    )
    grads = torch.autograd.grad(loss, [*s, tau])
    return [loss.detach(), lam_pos.mean(), lam_neg.mean(), *grads]


def triton_available(device: torch.device) -> str | None:
    """None if the Triton kernels can run here, else why not."""
    from unihpr.ops.backend import _triton_problem

    return _triton_problem(device, torch.float32)


def section_exact_correctness(run: Runner, plan: dict, budget: Budget) -> list[dict]:
    rows = []
    why = triton_available(run.device)
    if why is not None:
        budget.skipped.append(f"exact_correctness: Triton cannot run ({why})")
        return rows
    names = ["loss", "lambda_pos_mean", "lambda_neg_mean", "d_s12", "d_s13", "d_s23", "d_tau"]
    for B in plan["exact_correctness_B"]:
        if not budget.allows(f"exact_correctness B={B}", needs=30.0 if B >= 2048 else 5.0):
            continue
        sims = _sims(B, plan["dim"], run.device, seed=B)
        t0 = time.perf_counter()
        ref = _exact(sims, "torch")
        run.sync()
        t_torch = time.perf_counter() - t0
        got = _exact(sims, "triton")
        worst = 0.0
        for name, r, g in zip(names, ref, got):
            scale = float(r.abs().max()) or 1.0
            diff = float((g - r).abs().max())
            worst = max(worst, diff / scale)
            rows.append(
                {"B": B, "quantity": name, "max_abs_diff": diff, "rel_to_max": diff / scale}
            )
        rows.append({"B": B, "quantity": "all (worst)", "max_abs_diff": "", "rel_to_max": worst,
                     "pass (<= 1e-3)": worst <= 1e-3, "torch_first_call_s": t_torch})  # fmt: skip
    return rows


def section_exact_speed(run: Runner, plan: dict, budget: Budget) -> list[dict]:
    rows = []
    backends = ["torch"]
    why = triton_available(run.device)
    if why is None:
        backends.insert(0, "triton")
    else:
        budget.skipped.append(f"exact_speed triton: cannot run ({why})")
    for B in plan["speed_B"]:
        sims = _sims(B, plan["dim"], run.device, seed=B + 1)
        for backend in backends:
            slow = backend == "torch" and B >= 2048
            if not budget.allows(f"exact_speed {backend} B={B}", needs=60.0 if slow else 5.0):
                continue
            m = run.measure(lambda b=backend, s=sims: _exact(s, b), repeat=1 if slow else None)
            rows.append({"B": B, "backend": backend, **m})
    for B in plan["speed_B"]:
        by = {r["backend"]: r["ms"] for r in rows if r["B"] == B}
        if "triton" in by and "torch" in by:
            rows.append({"B": B, "backend": "torch / triton", "ms": by["torch"] / by["triton"]})
    return rows


def section_sampled_speed(run: Runner, plan: dict, budget: Budget, compile_: bool) -> list[dict]:
    from unihpr.losses import ContrastiveLoss, PairInfoNCE, TripletInfoNCE

    rows = []
    for B in plan["speed_B"]:
        if not budget.allows(f"sampled_speed B={B}", needs=5.0):
            continue
        g = torch.Generator().manual_seed(B)
        xs = [torch.randn(B, plan["dim"], generator=g).to(run.device).requires_grad_()
              for _ in range(3)]  # fmt: skip
        pair = PairInfoNCE(0.07, validate=False).to(run.device)
        gen = torch.Generator(device=run.device).manual_seed(0)

        def pairs(xs=xs, pair=pair):
            (pair(xs[0], xs[1]) + pair(xs[0], xs[2]) + pair(xs[1], xs[2])).backward()

        variants = [("3x PairInfoNCE", pairs)]
        backends = ["torch"] + (["compile"] if compile_ else [])
        for backend in backends:
            loss = ContrastiveLoss(
                PairInfoNCE(validate=False), TripletInfoNCE(backend=backend, validate=False)
            ).to(run.device)

            def step(xs=xs, loss=loss, gen=gen):
                loss(*xs, generator=gen).backward()

            variants.append((f"ContrastiveLoss (backend={backend!r})", step))
        base = None
        for name, fn in variants:
            if "compile" in name and not budget.allows(f"sampled_speed compile B={B}", 90.0):
                continue
            m = run.measure(fn)
            base = base or m["ms"]
            rows.append({"B": B, "variant": name, **m, "vs_pairs": m["ms"] / base})
    return rows


def _quiet_trainer(model_name: str, stage_name: str, B: int, device: torch.device, amp: str):
    """A Trainer for one stage of ``model_name`` and one synthetic batch of size B."""
    from bench_train import _batch as synthetic_batch

    from unihpr.models import create_model
    from unihpr.train import LossConfig, StageConfig, Trainer, make_stage
    from unihpr.train.distributed import DistInfo

    model = create_model(model_name).to(device)
    loss = LossConfig(tau_init=0.2, tau_min=0.1, use_triplet=stage_name != "align2d3d")
    cfg = StageConfig(name=stage_name, steps=10**6, batch_size=B, loss=loss)
    stage = make_stage(model, cfg)
    batch = synthetic_batch(model, B, device)
    if stage_name == "align2d3d":  # pose-only stage: no 1.2 GB of unused images at B = 2048
        del batch["image"]
    data = [dict(zip(batch, values)) for values in zip(*(v.cpu() for v in batch.values()))]
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"gpu_check_{os.getpid()}_{stage_name}"
    trainer = Trainer(stage, data, cfg, output_dir=out, device=device, amp=amp,
                      dist_info=DistInfo(device=device), progress=False)  # fmt: skip
    return trainer, batch


def section_train_steps(run: Runner, plan: dict, budget: Budget) -> list[dict]:
    rows = []
    amp = "bf16" if run.device.type == "cuda" else "off"
    for stage_name, B in (("align2d3d", plan["stage1_B"]), ("finetune", plan["stage3_B"])):
        if not budget.allows(f"train_steps {stage_name}", needs=40.0):
            continue
        trainer, batch = _quiet_trainer(plan["model"], stage_name, B, run.device, amp)
        trainer.train_step(batch)  # first step: validated, logged, warm-up
        steps = plan["train_steps"]

        def quiet(trainer=trainer, batch=batch, steps=steps):
            for _ in range(steps):
                trainer.train_step(batch, diagnostics=False, validate=False)

        m = run.measure(quiet, repeat=1)
        rows.append({"model": plan["model"], "stage": stage_name, "B": B, "amp": amp,
                     "ms_per_step": m["ms"] / steps, "samples_per_s": B * steps * 1e3 / m["ms"],
                     "peak_mib": m["peak_mib"]})  # fmt: skip
    return rows


def _record_syncs(device: torch.device, fn: Callable[[], object]) -> list[str]:
    """Call ``fn`` and return the synchronising calls it made, as "file:line" strings."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return [
            f"{w.filename}:{w.lineno}" for w in caught if "synchroniz" in str(w.message).lower()
        ]
    # The CPU stand-in for the sync debug mode is a test tool: it lives in tests/.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from host_syncs import record_host_syncs

    with record_host_syncs() as calls:
        fn()
    return [f"{where} ({name})" for name, where in calls]


def section_host_syncs(run: Runner, plan: dict, budget: Budget) -> list[dict]:
    from unihpr.losses import ContrastiveLoss, LearnableTemperature, PairInfoNCE, TripletInfoNCE

    rows = []
    B = plan["stage3_B"]
    for negatives in ("sampled", "all"):
        loss = ContrastiveLoss(
            PairInfoNCE(LearnableTemperature(0.1), validate=False),
            TripletInfoNCE(LearnableTemperature(0.2), negatives=negatives, validate=False),
        ).to(run.device)
        xs = [torch.randn(B, plan["dim"], device=run.device, requires_grad=True) for _ in range(3)]
        gen = torch.Generator().manual_seed(0)  # a CPU generator, as the Trainer's
        loss(*xs, generator=gen).backward()  # warm-up (kernel compilation)
        sites = _record_syncs(run.device, lambda f=loss, x=xs, g=gen: f(*x, generator=g).backward())
        rows.append({"what": f"ContrastiveLoss(negatives={negatives!r}) fwd+bwd, validate=False",
                     "syncs": len(sites), "sites": sorted(set(sites))})  # fmt: skip
    amp = "bf16" if run.device.type == "cuda" else "off"
    for stage_name in ("align_image", "finetune"):
        if not budget.allows(f"host_syncs {stage_name}", needs=30.0):
            continue
        trainer, batch = _quiet_trainer(plan["model"], stage_name, B, run.device, amp)
        trainer.train_step(batch)  # the validated first step
        sites = _record_syncs(
            run.device,
            lambda t=trainer, b=batch: t.train_step(b, diagnostics=False, validate=False),
        )
        rows.append({"what": f"quiet Trainer step, {plan['model']} {stage_name}",
                     "syncs": len(sites), "sites": sorted(set(sites))})  # fmt: skip
    return rows


def evaluate_targets(sections: dict, tiny: bool) -> list[dict]:
    """Pass/fail against the issue's targets (not evaluated at toy sizes)."""
    out = []

    def add(name: str, value, target: str, ok):
        out.append({"target": name, "value": value, "goal": target,
                    "pass": "n/a (tiny)" if tiny else ok})  # fmt: skip

    exact = sections.get("exact_speed", [])
    big = max((r["B"] for r in exact), default=None)
    tri = next((r for r in exact if r["B"] == big and r["backend"] == "triton"), None)
    ratio = next((r for r in exact if r["B"] == big and r["backend"] == "torch / triton"), None)
    if tri:
        ms = tri["ms"]
        add(f"exact fwd+bwd, Triton, B={big}", ms, f"< {TARGETS['exact_ms_B2048']} ms",
            ms < TARGETS["exact_ms_B2048"])  # fmt: skip
    if ratio:
        add(f"Triton speed-up over chunked torch, B={big}", ratio["ms"],
            f">= {TARGETS['triton_speedup']}x", ratio["ms"] >= TARGETS["triton_speedup"])  # fmt: skip
    for r in sections.get("sampled_speed", []):
        if r["variant"].startswith("ContrastiveLoss"):
            add(f"{r['variant']} / 3x PairInfoNCE, B={r['B']}", r["vs_pairs"],
                f"<= {TARGETS['contrastive_vs_pairs']}x",
                r["vs_pairs"] <= TARGETS["contrastive_vs_pairs"])  # fmt: skip
    for r in sections.get("host_syncs", []):
        if r["what"].startswith("ContrastiveLoss"):
            add(f"host syncs: {r['what']}", r["syncs"], "0", r["syncs"] == 0)
    for r in sections.get("exact_correctness", []):
        if r["quantity"] == "all (worst)":
            add(f"Triton vs torch, B={r['B']}", r["rel_to_max"], "<= 1e-3", r["pass (<= 1e-3)"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny)")
    p.add_argument(
        "--tiny", action="store_true", help="toy sizes and unihpr-tiny (tests the script)"
    )
    p.add_argument(
        "--budget-s", type=float, default=270.0, help="wall-clock budget of all sections"
    )
    p.add_argument(
        "--no-compile", action="store_true", help="skip backend='compile' (compiles ~1 min)"
    )
    p.add_argument(
        "--compile", action="store_true", help="also measure backend='compile' with --tiny"
    )
    p.add_argument(
        "--out", default="benchmarks/results/gpu_check.json", help="JSON file of the report"
    )
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA_MESSAGE, file=sys.stderr)
        return 2
    if device.type not in ("cuda", "cpu"):
        print(f"gpu_check: --device must be cuda or cpu, got {args.device!r}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        if not args.tiny:
            print("gpu_check: --device cpu is only for testing the script; add --tiny",
                  file=sys.stderr)  # fmt: skip
            return 2
        # The Triton kernels run on CPU tensors in the interpreter (set before triton loads).
        os.environ.setdefault("TRITON_INTERPRET", "1")
    plan = TINY if args.tiny else FULL
    compile_ = (device.type == "cuda" and not args.no_compile) or args.compile
    run = Runner(device, plan["repeat"])
    budget = Budget(args.budget_s)
    sections: dict[str, list[dict]] = {}
    steps = [
        ("exact_correctness", lambda: section_exact_correctness(run, plan, budget)),
        ("exact_speed", lambda: section_exact_speed(run, plan, budget)),
        ("sampled_speed", lambda: section_sampled_speed(run, plan, budget, compile_)),
        ("host_syncs", lambda: section_host_syncs(run, plan, budget)),
        ("train_steps", lambda: section_train_steps(run, plan, budget)),
    ]
    for name, fn in steps:
        print(f"== {name} ({budget.elapsed():.0f} s elapsed)", flush=True)
        try:
            sections[name] = fn()
        except Exception as err:  # report and go on: one failing section must not hide the rest
            budget.skipped.append(f"{name}: failed with {type(err).__name__}: {err}")
            sections[name] = []
        rows = sections[name]
        if rows:
            print_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
    targets = evaluate_targets(sections, args.tiny)
    print("\n== targets")
    print_table(targets, ["target", "value", "goal", "pass"])
    for note in budget.skipped:
        print(f"note: {note}")
    info = machine()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    write_json(
        args.out,
        {
            "machine": info,
            "device": str(device),
            "mode": "tiny (script test: numbers meaningless)" if args.tiny else "full",
            "triton": importlib.util.find_spec("triton") is not None,
            "elapsed_s": budget.elapsed(),
            "sections": sections,
            "targets": targets,
            "notes": budget.skipped,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
