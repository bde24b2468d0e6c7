"""Metric logging (JSONL, optional TensorBoard) and progress bars."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from unihpr._optional import require


class MetricsLogger:
    """Append one JSON object per logged step to ``<directory>/metrics.jsonl``.

    Each line is ``{"stage": str, "step": int, <metric>: float, ...}``. Only the
    process created with ``enabled=True`` (rank 0) writes anything.

    Args:
        directory: Output directory (created on first write).
        enabled: ``False`` on non-zero ranks: every method becomes a no-op.
        tensorboard: Also write scalars with ``torch.utils.tensorboard``; needs
            the ``tensorboard`` extra (``pip install -e ".[tensorboard]"`` in a checkout).
    """

    def __init__(
        self, directory: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.enabled = enabled
        self.path = self.directory / "metrics.jsonl"
        self._writer = None
        if enabled and tensorboard:
            require("tensorboard")
            tb = require("torch.utils.tensorboard", "tensorboard")
            self._writer = tb.SummaryWriter(log_dir=str(self.directory / "tensorboard"))

    def log(self, stage: str, step: int, metrics: dict[str, Any]) -> None:
        """Write the metrics of ``step`` of ``stage``; tensors are converted with ``.item()``."""
        if not self.enabled:
            return
        row: dict[str, Any] = {"stage": stage, "step": int(step)}
        for key, value in metrics.items():
            v = float(value.item() if hasattr(value, "item") else value)
            row[key] = v if math.isfinite(v) else str(v)
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._writer is not None:
            for key, value in row.items():
                if key not in ("stage", "step") and isinstance(value, float):
                    self._writer.add_scalar(f"{stage}/{key}", value, step)

    def truncate_after(self, stage: str, step: int) -> None:
        """Drop rows of ``stage`` with a step above ``step`` (used when resuming).

        A run that crashed after its last checkpoint has logged steps that the
        resumed run will log again; removing them keeps one row per step.
        """
        if not self.enabled or not self.path.is_file():
            return
        kept = [
            line
            for line, row in _parse_metrics(self.path)
            if not (row["stage"] == stage and row["step"] > step)
        ]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(k + "\n" for k in kept))
        os.replace(tmp, self.path)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _parse_row(line: str) -> dict[str, Any]:
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if not isinstance(row.get("stage"), str) or type(row.get("step")) is not int:
        raise ValueError("a row needs a string 'stage' and an integer 'step'")
    return row


def _parse_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, row)`` for every row of a metrics file, the one parser of the format.

    A damaged *last* line (a write cut short by a crash, power loss or a full
    disk, often with trailing NUL bytes) is dropped with a warning; a damaged
    line followed by intact ones is an error, since that is not how appending
    fails.
    """
    numbered = [
        (n, line)
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if line.strip()
    ]
    out = []
    for i, (n, line) in enumerate(numbered):
        try:
            row = _parse_row(line)
        except ValueError as err:  # json.JSONDecodeError is a ValueError
            if i == len(numbered) - 1:
                warnings.warn(
                    f"metrics file {str(path)!r}: dropping its damaged last line {n} ({err}); "
                    "an earlier run was interrupted while writing it",
                    stacklevel=3,
                )
                break
            raise ValueError(f"metrics file {str(path)!r}, line {n}: invalid row ({err})") from err
        out.append((line, row))
    return out


def read_metrics(path: str | os.PathLike, stage: str | None = None) -> list[dict[str, Any]]:
    """Read the rows of a ``metrics.jsonl`` file, optionally only those of ``stage``.

    A damaged last line (an interrupted write) is dropped with a warning.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: A line other than the last is not a valid row (the line
            number is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file {str(path)!r} does not exist")
    return [row for _, row in _parse_metrics(path) if stage is None or row["stage"] == stage]


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TextProgress:
    """Progress of a run as one log line every ``every`` steps (for logs, not terminals).

    Used instead of a tqdm bar when stderr is not a terminal (CI logs, ``nohup``,
    captured notebook output), where a bar would either print nothing or fill
    the log with carriage returns. A line reads
    ``align2d3d: step 300/1500 (20%), loss 2.3456, elapsed 0:00:41, ETA 0:02:44``.
    It has the part of tqdm's interface the training loop uses.

    Args:
        total: Steps of the run.
        initial: Steps already done (a resumed run); the ETA counts only this run's.
        desc: Which run this is (the stage name, or a label such as
            ``"align_image (no L_triplet)"``).
        every: Steps between lines; the last step always gets one.
        file: Stream written to (default ``sys.stderr``).
        unit: What is counted (``"step"``, ``"image"``, ...).
    """

    disable = False

    def __init__(
        self, total: int, *, initial: int = 0, desc: str = "", every: int = 1, file: Any = None,
        unit: str = "step",
    ) -> None:  # fmt: skip
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.total, self.n, self.desc, self.every = int(total), int(initial), desc, int(every)
        self.file, self.unit = file, unit
        self.postfix: dict[str, Any] = {}
        self._start_n = self.n
        self._t0 = time.perf_counter()

    def set_postfix(self, **values: Any) -> None:
        """Values shown at the end of the next line (e.g. ``loss="1.2345"``)."""
        self.postfix.update(values)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps; prints a line at every multiple of ``every`` and at the end."""
        before, self.n = self.n, self.n + n
        if self.n // self.every > before // self.every or (before < self.total <= self.n):
            self._print()

    def line(self) -> str:
        """The current progress line."""
        elapsed = time.perf_counter() - self._t0
        done = self.n - self._start_n
        parts = [f"{self.unit} {self.n}/{self.total} ({100 * self.n // max(self.total, 1)}%)"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        parts.append(f"elapsed {_clock(elapsed)}")
        if done > 0 and self.n < self.total:
            parts.append(f"ETA {_clock(elapsed / done * (self.total - self.n))}")
        return f"{self.desc}: " + ", ".join(parts) if self.desc else ", ".join(parts)

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)

    def close(self) -> None:
        """Nothing to release (tqdm compatibility)."""


def progress_bar(
    total: int, *, initial: int = 0, desc: str = "", enabled: bool = True, lines: int = 20,
    align: int = 1, unit: str = "step",
) -> tqdm | TextProgress:  # fmt: skip
    """Progress display of a run of ``total`` steps labelled ``desc``.

    A tqdm bar with an ETA when stderr is a terminal; otherwise a
    [`TextProgress`][unihpr.train.logger.TextProgress] printing about ``lines``
    lines, every a multiple of ``align`` steps (pass the logging interval so
    that each line shows a loss of that very step). ``enabled=False`` (other
    ranks, ``progress=False``) shows nothing.
    """
    if enabled and not sys.stderr.isatty():
        every = max(1, round(total / max(lines, 1) / align)) * align
        return TextProgress(total, initial=initial, desc=desc, every=every, unit=unit)
    return tqdm(
        total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, unit=unit
    )
