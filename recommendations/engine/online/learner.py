"""Online learning of the KAN ranker behind a guard rail.

Per micro-batch of events, :meth:`OnlineLearner.observe`:

1. builds the examples from the tables *before* the batch (the state a
   prediction of these events would have seen): each event's history x
   ``[its item, negatives uniform items]``, label 1 on the item of a positive
   event, 0 elsewhere (an explicit negative event's row counts only its item,
   as a BCE negative); ``replay`` examples from a buffer of earlier batches
   (stored features) join them;
2. updates the feature tables (:class:`~.tables.OnlineTables`: popularity,
   decayed recent popularity, last / first seen, transitions, co-occurrence);
3. takes ``steps`` SGD steps on the examples (:meth:`KAN.fit_features`), the
   learning rate capped at :data:`MAX_LR` and the gradient norm clipped;
4. every ``guard_every`` SGD updates, the guard: full-ranking NDCG@10 on a
   fixed held-out slice (``guard_size`` users of the ``guard_task`` given at
   construction). The reference is the value of the *published* weights (the
   last accepted ones, at first the offline-trained ones). If the new value
   is below ``reference x (1 - guard_margin)`` the weights go back to the
   published snapshot and one WARNING is logged; otherwise the current state
   is published (a new :class:`OnlineSnapshot` version) and its value becomes
   the reference.

The guard protects the *weights*: a rollback restores the published KAN
weights and keeps the feature tables, which are counts of events that did
happen (``restore`` returns everything, tables included, to a snapshot).
The reference is measured on the tables of its time; over ``guard_every``
batches the tables move little compared with the margin, and after a rollback
the reference is measured again on the current tables. Accepting each check
within the margin lets the guard drift by at most ``guard_margin`` per
accepted check; re-anchor by constructing a new learner from the offline
model when that matters.

What else the coordinator updates per batch (no code needed here): the
sequence models (SASRec, the ODE models) need no weight change, they score
from the current history; retrieval's LightGCN user vector is the fold-in of
the user's current history (:func:`~.lightgcn.lightgcn_user_vector`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.data.splits import EvalTask
from recommendations.engine.evaluation.evaluator import validation_ndcg
from recommendations.engine.models.kan import KAN
from recommendations.engine.online.events import OnlineEvent
from recommendations.engine.online.tables import OnlineTables, TableUpdate

logger = logging.getLogger(__name__)

MAX_LR = 0.2
"""Hard cap on the online learning rate (the config refuses more)."""


class OnlineConfig(BaseModel):
    """How the online learner updates the KAN (immutable, unknown keys rejected).

    The defaults are the setting chosen on ML-100K's validation stream
    (``benchmarks/prequential_bench.py``, docs/BENCHMARKS.md issue 13).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    update_tables: bool = True
    """Update the feature tables from each batch (incrementally)."""
    update_weights: bool = True
    """Take SGD steps on the KAN weights from each batch."""
    loss: Literal["bce", "softmax"] = "softmax"
    """``softmax``: the event's item against its negatives (the offline
    objective); ``bce``: pointwise binary cross-entropy (``KAN.partial_fit``)."""
    optimizer: Literal["sgd", "adam"] = "adam"
    """``sgd``: plain SGD per batch; ``adam``: Adam whose moments persist
    across batches (reset by a rollback or a restore)."""
    lr: float = Field(0.003, gt=0, le=MAX_LR)
    """Learning rate, capped at ``MAX_LR``."""
    steps: int = Field(1, ge=1, le=20)
    """SGD steps per batch."""
    negatives: int = Field(32, ge=1)
    """Uniform random negative items per event."""
    max_grad_norm: float | None = Field(1.0, gt=0)
    """Clip the gradient's global norm (``None``: no clipping)."""
    replay: int = Field(300, ge=0)
    """Past examples replayed with each batch: drawn from a buffer of the
    features the learner stored when it learned them (features of the tables
    *before* their event, so a replayed example never sees its own counts)."""
    buffer_size: int = Field(10_000, ge=1)
    """Examples the replay buffer keeps (the most recent)."""
    guard_every: int = Field(10, ge=1)
    """Run the guard after this many SGD updates (batches)."""
    guard_margin: float = Field(0.05, ge=0, lt=1)
    """Roll back when the guard NDCG@10 falls below ``reference x (1 - margin)``."""
    guard_size: int = Field(200, ge=1)
    """Users of the held-out guard slice (a seeded sample of ``guard_task``)."""
    seed: int = 0
    """Seed of the negative sampling and of the guard slice."""


@dataclass(frozen=True)
class GuardResult:
    """One guard check."""

    ndcg: float
    """NDCG@10 of the current weights on the guard slice."""
    reference: float
    """NDCG@10 of the published weights."""
    threshold: float
    """``reference x (1 - margin)``: below it the update is rolled back."""
    accepted: bool
    version: int
    """Published version after the check."""


@dataclass(frozen=True)
class ObserveReport:
    """What one :meth:`OnlineLearner.observe` call did."""

    events: int
    positives: int
    loss: float | None
    """Loss of the batch before the SGD steps (``None``: no SGD)."""
    tables: TableUpdate | None
    guard: GuardResult | None
    rolled_back: bool
    published: bool
    """A new snapshot was published (the guard accepted)."""
    seconds: float


@dataclass(frozen=True)
class OnlineSnapshot:
    """A versioned state to ship to serving or to restore.

    ``model_state`` is ``KAN.get_state()`` (weights and feature tables; what
    ``state.npz`` holds), ``table_state`` the online statistics
    (:meth:`OnlineTables.state`, empty when tables are not updated).
    """

    version: int
    model_state: dict[str, np.ndarray]
    table_state: dict[str, np.ndarray] = field(default_factory=dict)
    reference_ndcg: float | None = None


def subsample_task(task: EvalTask, size: int, seed: int) -> EvalTask:
    """At most ``size`` users of ``task`` (seeded, order kept)."""
    if len(task) <= size:
        return task
    pick = np.sort(np.random.default_rng(seed).choice(len(task), size, replace=False))
    return EvalTask(
        task.users[pick],
        [task.histories[i] for i in pick],
        task.exclude[pick],
        task.targets[pick],
    )


def _weights(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in state.items() if not k.startswith("_t_")}


class OnlineLearner:
    """Applies micro-batches of events to a fitted :class:`KAN` (module doc).

    Args:
        model: the fitted KAN; it is updated in place.
        config: an :class:`OnlineConfig` (or keyword overrides of the defaults).
        guard_task: held-out (history, target) pairs for the guard; ``None``
            disables the guard (every update is kept).
        table_state: online statistics to resume from (a snapshot's
            ``table_state``), else recovered from the model's tables.
    """

    def __init__(
        self,
        model: KAN,
        config: OnlineConfig | None = None,
        *,
        guard_task: EvalTask | None = None,
        table_state: dict[str, np.ndarray] | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = OnlineConfig(**overrides)
        elif overrides:
            config = OnlineConfig(**{**config.model_dump(), **overrides})
        self.config = config
        self.model = model
        self.rng = np.random.default_rng(config.seed)
        self.tables = OnlineTables(model, table_state) if config.update_tables else None
        self.guard_task = (
            subsample_task(guard_task, config.guard_size, config.seed)
            if guard_task is not None and len(guard_task)
            else None
        )
        self.updates_since_guard = 0
        self.rollbacks = 0
        self._buffer_x: np.ndarray | None = None  # (buffer_size, 1 + neg, F)
        self._buffer_y: np.ndarray | None = None
        self._buffered = 0  # examples ever added (ring position = this % size)
        self._adam: torch.optim.Optimizer | None = None
        self.version = 0
        self.reference = self._guard_value() if self.guard_task is not None else None
        self.published = self.snapshot()

    # ------------------------------------------------------------ public
    def observe(self, events: Sequence[OnlineEvent]) -> ObserveReport:
        """Apply one micro-batch of events (in time order); see the module doc."""
        cfg = self.config
        started = time.perf_counter()
        positives = sum(e.positive for e in events)
        examples = (
            self._examples(events) if cfg.update_weights and len(events) else None
        )
        table_update = self.tables.update(events) if self.tables is not None else None
        loss = None
        if examples is not None:
            x, y = self._with_replay(*examples)
            # an explicit negative's row: only its item (label 0) counts; its
            # sampled negatives say nothing
            w = np.ones_like(y)
            w[y.sum(axis=1) == 0, 1:] = 0.0
            loss = self.model.fit_features(
                x, y, loss=cfg.loss, weights=w, lr=cfg.lr, steps=cfg.steps,
                max_grad_norm=cfg.max_grad_norm, optimizer=self._optimizer(),
            )  # fmt: skip
            self.updates_since_guard += 1
        guard = None
        if self.guard_task is not None and self.updates_since_guard >= cfg.guard_every:
            guard = self.check()
        return ObserveReport(
            events=len(events),
            positives=positives,
            loss=loss,
            tables=table_update,
            guard=guard,
            rolled_back=guard is not None and not guard.accepted,
            published=guard is not None and guard.accepted,
            seconds=time.perf_counter() - started,
        )

    def check(self) -> GuardResult:
        """Run the guard now: publish the current weights or roll them back."""
        if self.guard_task is None or self.reference is None:
            raise ValueError("the learner has no guard task")
        cfg = self.config
        self.updates_since_guard = 0
        value = self._guard_value()
        reference = self.reference
        threshold = reference * (1.0 - cfg.guard_margin)
        accepted = value >= threshold
        if accepted:
            self.version += 1
            self.reference = value
            self.published = self.snapshot()
        else:
            self.rollbacks += 1
            current = self.model.get_state()
            tables = {k: v for k, v in current.items() if k.startswith("_t_")}
            self.model.set_state({**_weights(self.published.model_state), **tables})
            self._adam = None
            self.reference = self._guard_value()
            logger.warning(
                "online KAN update rolled back: guard NDCG@10 %.4f < %.4f "
                "(published %.4f x (1 - %.3f)); back to version %d",
                value, threshold, reference, cfg.guard_margin, self.version,
            )  # fmt: skip
        return GuardResult(value, reference, threshold, accepted, self.version)

    def snapshot(self) -> OnlineSnapshot:
        """The current state (weights, feature tables, online statistics)."""
        return OnlineSnapshot(
            version=self.version,
            model_state=self.model.get_state(),
            table_state=self.tables.state() if self.tables is not None else {},
            reference_ndcg=self.reference,
        )

    def restore(self, snapshot: OnlineSnapshot) -> None:
        """Return the model and the online statistics to ``snapshot``; it
        becomes the published state."""
        self.model.set_state(dict(snapshot.model_state))
        self._adam = None
        if self.tables is not None and snapshot.table_state:
            self.tables.load_state(snapshot.table_state)
        self.version = snapshot.version
        self.reference = snapshot.reference_ndcg
        if self.guard_task is not None and self.reference is None:
            self.reference = self._guard_value()
        self.updates_since_guard = 0
        self.published = snapshot

    # ----------------------------------------------------------- helpers
    def _guard_value(self) -> float:
        assert self.guard_task is not None
        return validation_ndcg(self.model, self.guard_task)

    def _optimizer(self) -> torch.optim.Optimizer | None:
        """The persistent Adam (``optimizer="adam"``), else ``None`` (SGD)."""
        if self.config.optimizer != "adam":
            return None
        if self._adam is None:
            net = self.model._require_net()
            self._adam = torch.optim.Adam(net.parameters(), lr=self.config.lr)
        return self._adam

    def _with_replay(
        self, x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The batch plus ``replay`` buffered examples; then buffer the batch."""
        cfg = self.config
        if cfg.replay == 0:
            return x, y
        size = cfg.buffer_size
        if self._buffer_x is None or self._buffer_y is None:
            self._buffer_x = np.zeros((size, *x.shape[1:]), dtype=np.float32)
            self._buffer_y = np.zeros((size, *y.shape[1:]), dtype=np.float32)
        filled = min(self._buffered, size)
        out_x, out_y = x, y
        if filled:
            pick = self.rng.integers(0, filled, min(cfg.replay, filled))
            out_x = np.concatenate([x, self._buffer_x[pick]])
            out_y = np.concatenate([y, self._buffer_y[pick]])
        xb, yb = x[-size:], y[-size:]
        slots = (self._buffered + np.arange(len(xb))) % size
        self._buffer_x[slots] = xb
        self._buffer_y[slots] = yb
        self._buffered += len(xb)
        return out_x, out_y

    def _examples(self, events: Sequence[OnlineEvent]) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(B, 1 + negatives, F)`` and labels ``(B, 1 + negatives)``."""
        n = self.model.n_items
        items = np.asarray([e.item for e in events], dtype=np.int64)
        neg = self.rng.integers(0, n, (len(events), self.config.negatives))
        clash = neg == items[:, None]
        neg[clash] = (neg[clash] + 1) % n
        cand = np.concatenate([items[:, None], neg], axis=1)
        labels = np.zeros(cand.shape, dtype=np.float32)
        labels[:, 0] = [float(e.positive) for e in events]
        histories = [e.as_history() for e in events]
        for h in histories:
            self.model._check_items(h.items, n)
        self.model._check_items(items, n)
        return self.model.features(histories, cand), labels
