"""The trainer: owns seeding, the epoch loop, early stopping and checkpoints.

Models supply one epoch (:meth:`IterativeRecommender.train_epoch`); the
trainer validates with full-ranking NDCG@10 on the validation task every
``eval_every`` epochs, keeps the best state (in memory, and on disk when
``checkpoint_dir`` is set), stops after ``patience`` evaluations without
improvement or when ``time_budget_s`` is spent, and restores the best state.
Closed-form models are fitted once, timed the same way.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeGuard

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.evaluator import validation_ndcg

logger = logging.getLogger(__name__)


class TrainerConfig(BaseModel):
    """How long and how carefully to train."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_epochs: int = Field(200, ge=1)
    """Upper bound on epochs."""
    patience: int = Field(10, ge=1)
    """Evaluations without a better validation NDCG@10 before stopping."""
    eval_every: int = Field(1, ge=1)
    """Validate every this many epochs."""
    min_delta: float = Field(0.0, ge=0.0)
    """Improvement smaller than this does not count."""
    time_budget_s: float | None = Field(None, gt=0)
    """Stop (keeping the best state) once training took this long."""
    seed: int = 0
    """Seed for Python, numpy and torch."""
    device: str = "cpu"
    """``cpu`` or ``cuda``."""
    threads: int | None = Field(None, ge=1)
    """torch intra-op threads (default: ``APEX_TORCH_THREADS``, else detected)."""
    checkpoint_dir: Path | None = None
    """Folder where the best state is also written (``best/``)."""
    log_every_s: float = Field(10.0, gt=0)
    """Minimum seconds between progress log lines."""


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    valid_ndcg: float | None
    seconds: float


@dataclass
class FitReport:
    model: str
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0
    epochs: int = 0
    best_epoch: int | None = None
    best_valid_ndcg: float | None = None
    stopped: str = "completed"
    history: list[EpochRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_seconds": round(self.train_seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_valid_ndcg@10": self.best_valid_ndcg,
            "stopped": self.stopped,
            **self.extra,
        }


class Trainable(Protocol):
    """What the trainer fits: a
    :class:`~recommendations.engine.models.base.Recommender` (the trainer does
    not import the models; they import it)."""

    @property
    def name(self) -> str: ...

    @property
    def iterative(self) -> bool: ...

    device: str
    last_fit: FitReport | None

    def prepare(self, train: Interactions) -> None: ...

    def fit_closed_form(self, train: Interactions, valid: EvalTask | None) -> None: ...

    def score(self, histories: Sequence[History]) -> np.ndarray: ...

    def get_state(self) -> dict[str, np.ndarray]: ...

    def set_state(self, state: dict[str, np.ndarray]) -> None: ...

    def save(self, path: str | Path) -> Path: ...


class IterativeTrainable(Trainable, Protocol):
    """An ``iterative`` model: the epoch hooks of ``IterativeRecommender``."""

    def setup(self, train: Interactions, seed: int) -> None: ...

    def train_epoch(self, epoch: int) -> float: ...

    def finish(self, valid: EvalTask | None) -> None: ...


def _is_iterative(model: Trainable) -> TypeGuard[IterativeTrainable]:
    return model.iterative


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency today
        return
    torch.manual_seed(seed)


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads: explicit, ``APEX_TORCH_THREADS``, or detected.

    Detected: 1 thread on machines with 2 cores or fewer, else half the cores
    (at most 4), and 1 whenever the machine is already oversubscribed (load
    average above the core count). Measured on the 2-core development VM: a
    SASRec epoch took 4.9 s on 1 thread and 10.9 s on 2 while one other
    process was busy, and up to 20x longer when two were - the second thread
    mostly waits at synchronisation barriers.
    """
    import torch

    cores = os.cpu_count() or 1
    if threads is None and os.environ.get("APEX_TORCH_THREADS"):
        threads = int(os.environ["APEX_TORCH_THREADS"])
    if threads is None:
        threads = 1 if cores <= 2 else min(4, cores // 2)
        if threads > 1 and os.getloadavg()[0] > cores:
            threads = 1
            logger.info("machine is oversubscribed, training with 1 torch thread")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


class Trainer:
    def __init__(self, config: TrainerConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = TrainerConfig(**overrides)
        elif overrides:
            config = TrainerConfig(**{**config.model_dump(), **overrides})
        self.config = config

    def fit(
        self, model: Trainable, train: Interactions, valid: EvalTask | None = None
    ) -> FitReport:
        cfg = self.config
        seed_everything(cfg.seed)
        model.device = cfg.device
        model.prepare(train)
        report = FitReport(model=model.name)
        started = time.perf_counter()
        cpu_started = time.process_time()
        if not _is_iterative(model):
            model.fit_closed_form(train, valid)
            report.train_seconds = time.perf_counter() - started
            report.cpu_seconds = time.process_time() - cpu_started
            report.epochs = 1
            report.extra.update(getattr(model, "fit_info", {}))
            logger.info("fitted %s in %.1fs", model.name, report.train_seconds)
            model.last_fit = report
            return report
        set_threads(cfg.threads)
        model.setup(train, cfg.seed)
        self._loop(model, valid, report, started)
        model.finish(valid)
        report.extra.update(getattr(model, "fit_info", {}))
        report.train_seconds = time.perf_counter() - started
        report.cpu_seconds = time.process_time() - cpu_started
        logger.info(
            "trained %s: %d epochs in %.1fs, best epoch %s valid ndcg@10 %.4f (%s)",
            model.name, report.epochs, report.train_seconds, report.best_epoch,
            report.best_valid_ndcg or float("nan"),
            report.stopped,
        )  # fmt: skip
        model.last_fit = report
        return report

    def _loop(
        self,
        model: IterativeTrainable,
        valid: EvalTask | None,
        report: FitReport,
        started: float,
    ) -> None:
        cfg = self.config
        best: dict[str, np.ndarray] | None = None
        best_score = -np.inf
        bad_evals = 0
        last_log = 0.0
        for epoch in range(1, cfg.max_epochs + 1):
            t0 = time.perf_counter()
            loss = float(model.train_epoch(epoch))
            if not np.isfinite(loss):
                report.stopped = "non-finite loss"
                logger.warning("non-finite loss, stopping", extra={"epoch": epoch})
                break
            ndcg = None
            if valid is not None and len(valid) and epoch % cfg.eval_every == 0:
                ndcg = validation_ndcg(model, valid)
                if ndcg > best_score + cfg.min_delta:
                    best_score, bad_evals = ndcg, 0
                    best = {k: v.copy() for k, v in model.get_state().items()}
                    report.best_epoch = epoch
                    if cfg.checkpoint_dir is not None:
                        model.save(Path(cfg.checkpoint_dir) / "best")
                else:
                    bad_evals += 1
            report.history.append(
                EpochRecord(epoch, loss, ndcg, time.perf_counter() - t0)
            )
            report.epochs = epoch
            elapsed = time.perf_counter() - started
            if time.monotonic() - last_log >= cfg.log_every_s or epoch == 1:
                last_log = time.monotonic()
                per_epoch = elapsed / epoch
                eta = per_epoch * (cfg.max_epochs - epoch)
                if cfg.time_budget_s is not None:
                    eta = min(eta, max(cfg.time_budget_s - elapsed, 0.0))
                logger.info(
                    "%s epoch %d/%d loss %.4f valid ndcg@10 %s best %.4f "
                    "elapsed %.0fs eta <=%.0fs",
                    model.name, epoch, cfg.max_epochs, loss,
                    "-" if ndcg is None else f"{ndcg:.4f}",
                    max(best_score, 0.0), elapsed, eta,
                )  # fmt: skip
            if bad_evals >= cfg.patience:
                report.stopped = "early stopping"
                break
            if cfg.time_budget_s is not None and elapsed >= cfg.time_budget_s:
                report.stopped = "time budget"
                break
        if best is not None:
            model.set_state(best)
            report.best_valid_ndcg = float(best_score)
