"""Prequential ("test, then train") evaluation of online learning.

Gama, Sebastião & Rodrigues, "On evaluating stream learning algorithms",
Machine Learning 90(3), 2013: every event of the stream is first predicted
by the current model, then learned.

Protocol (:func:`run_prequential`):

- a global temporal cut: the model is trained (``factory``) on the events
  before the ``train_end`` quantile of event time; the events from there to
  the ``stream_end`` quantile are the stream, replayed in time order (ties:
  user, then item), *all* users included (a user without training events
  starts with an empty history);
- the state is updated per micro-batch of ``batch_size`` events, as the
  coordinator does: each event is predicted with the state after the
  previous batch, from the user's history up to the event (training events
  and earlier stream events, so histories grow in every variant);
- a prediction is the full-ranking rank of the event's item among all items
  except the user's already-seen ones (pessimistic ties,
  :func:`~recommendations.engine.evaluation.metrics.target_ranks`); NDCG@k
  and HR@k per event;
- full-ranking KAN over the catalog for every event is too slow on a small
  CPU, so a seeded uniform sample of ``predict_sample`` stream events is
  predicted (every event is still learned, in order); the sample and the
  seeds are the same for every variant;
- variants on the same stream: ``frozen`` (the trained model, growing
  histories only), ``tables`` (+ incremental feature tables), ``tables_sgd``
  (+ guarded online KAN SGD, :class:`~recommendations.engine.online.OnlineLearner`);
- paired bootstrap over the predicted events of ``tables_sgd - frozen`` (and
  the other pairs) and of the ratio of the means.

The guard slice is held out of the training period: ``guard_users`` users
whose last training event falls in the last ``guard_fraction`` of the
training time (and who keep at least 2 events) give their last
``guard_events`` training events as targets and their earlier events as the
history; the targets are removed from the training events the factory sees
(so neither the weights nor the tables count them; the users' stream
histories still include them). Their features are built like a served
request's, from tables of the past only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recommendations.engine.data.interactions import History, Interactions
from recommendations.engine.data.splits import EvalTask, make_task
from recommendations.engine.evaluation.metrics import target_ranks
from recommendations.engine.evaluation.stats import paired_bootstrap
from recommendations.engine.models.kan import KAN
from recommendations.engine.online.events import OnlineEvent, stream_events
from recommendations.engine.online.learner import OnlineConfig, OnlineLearner

logger = logging.getLogger(__name__)

VARIANTS: dict[str, tuple[bool, bool]] = {
    "frozen": (False, False),
    "tables": (True, False),
    "tables_sgd": (True, True),
}
"""Variant -> (update tables, update KAN weights)."""

ModelFactory = Callable[[Interactions], KAN]
"""Fits a KAN on the training events (sharing the data's vocabularies)."""


class PrequentialConfig(BaseModel):
    """The prequential protocol's settings (immutable, unknown keys rejected)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_end: float = Field(0.8, gt=0, lt=1)
    """Quantile of event time where training ends and the stream starts."""
    stream_end: float = Field(1.0, gt=0, le=1)
    """Quantile of event time where the stream ends (1 = every later event)."""
    batch_size: int = Field(100, ge=1)
    """Events per micro-batch (the state changes after each batch)."""
    predict_sample: int | None = Field(2000, ge=1)
    """Stream events predicted: a seeded uniform sample (``None``: all)."""
    k: int = Field(10, ge=1)
    """Cut-off of NDCG@k / HR@k."""
    guard_fraction: float = Field(0.1, gt=0, lt=1)
    """Guard users are drawn among those active in this last share of the
    training time."""
    guard_users: int = Field(200, ge=0)
    """Users held out for the guard slice (0: no guard)."""
    guard_events: int = Field(3, ge=1)
    """Last training events of each guard user held out as its targets."""
    bootstrap: int = Field(2000, ge=100)
    """Paired bootstrap resamples."""
    seed: int = 0
    """Seed of the prediction sample and the bootstrap."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run (keys of ``VARIANTS``)."""
    log_every_s: float = Field(15.0, gt=0)
    """Seconds between progress lines."""


@dataclass
class VariantResult:
    """Per-event metrics of one variant over the predicted events."""

    name: str
    ndcg: np.ndarray
    hr: np.ndarray
    ranks: np.ndarray
    learn_seconds: float = 0.0
    predict_seconds: float = 0.0
    events_learned: int = 0
    guards: int = 0
    rollbacks: int = 0
    batch_ms: list[float] = field(default_factory=list)

    def summary(self, k: int, known: np.ndarray) -> dict[str, Any]:
        rate = self.events_learned / self.learn_seconds if self.learn_seconds else None
        return {
            f"ndcg@{k}": float(self.ndcg.mean()),
            f"hr@{k}": float(self.hr.mean()),
            f"ndcg@{k}_known_users": _mean(self.ndcg[known]),
            f"ndcg@{k}_new_users": _mean(self.ndcg[~known]),
            "learn_seconds": round(self.learn_seconds, 2),
            "predict_seconds": round(self.predict_seconds, 2),
            "update_events_per_s": None if rate is None else round(rate, 1),
            "batch_ms_median": (
                round(float(np.median(self.batch_ms)), 2) if self.batch_ms else None
            ),
            "guards": self.guards,
            "rollbacks": self.rollbacks,
        }


@dataclass
class PrequentialResult:
    """Everything :func:`run_prequential` measured (``summary`` is JSON-able)."""

    data: str
    config: PrequentialConfig
    online: OnlineConfig
    train_events: int
    stream_events: int
    predicted: np.ndarray
    """Stream positions of the predicted events."""
    known_user: np.ndarray
    """Per predicted event: the user had training events."""
    new_item: np.ndarray
    """Per predicted event: the item had no training event."""
    variants: dict[str, VariantResult]
    fit_seconds: float

    def compare(self, a: str, b: str, metric: str = "ndcg") -> dict[str, float]:
        """Paired bootstrap of ``a - b`` and of the ratio of means ``a / b``."""
        x = getattr(self.variants[a], metric)
        y = getattr(self.variants[b], metric)
        out = paired_bootstrap(
            x, y, n_resamples=self.config.bootstrap, seed=self.config.seed
        )
        rng = np.random.default_rng(self.config.seed)
        idx = rng.integers(0, len(x), size=(self.config.bootstrap, len(x)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = x[idx].mean(axis=1) / y[idx].mean(axis=1)
        base = float(y.mean())
        out["ratio"] = float(x.mean() / base) if base > 0 else float("nan")
        lo, hi = np.nanquantile(ratios, [0.025, 0.975])
        out["ratio_low"], out["ratio_high"] = float(lo), float(hi)
        return out

    def summary(self) -> dict[str, Any]:
        k = self.config.k
        names = list(self.variants)
        pairs = [
            (a, b)
            for a, b in (
                ("tables_sgd", "frozen"),
                ("tables", "frozen"),
                ("tables_sgd", "tables"),
            )
            if a in self.variants and b in self.variants
        ]
        return {
            "data": self.data,
            "protocol": self.config.model_dump(),
            "online": self.online.model_dump(),
            "train_events": self.train_events,
            "stream_events": self.stream_events,
            "predicted_events": len(self.predicted),
            "predicted_known_users": int(self.known_user.sum()),
            "predicted_new_items": int(self.new_item.sum()),
            "fit_seconds": round(self.fit_seconds, 1),
            "variants": {
                n: self.variants[n].summary(k, self.known_user) for n in names
            },
            "comparisons": {
                f"{a} - {b}": {
                    metric: self.compare(a, b, metric) for metric in ("ndcg", "hr")
                }
                for a, b in pairs
            },
        }


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if len(x) else None


def clone_kan(model: KAN) -> KAN:
    """An independent copy of a fitted KAN (tables shared until replaced)."""
    twin = KAN(model.config)
    twin.items, twin.n_users, twin.device = model.items, model.n_users, model.device
    twin.set_state(model.get_state())
    return twin


def hold_out_guard(
    train: Interactions, users: int, fraction: float, seed: int, events: int = 1
) -> tuple[Interactions, EvalTask | None]:
    """The training events minus the guard targets, and the guard task.

    Guard users: up to ``users`` (seeded) of those with at least
    ``events + 2`` training events whose last one lies in the last
    ``fraction`` of the training time; their last ``events`` events are the
    targets, the rest the history.
    """
    if users == 0 or not len(train):
        return train, None
    ptr = train.user_ptr
    counts = np.diff(ptr)
    last = np.maximum(ptr[1:] - 1, 0)
    cut = np.quantile(train.timestamps, 1 - fraction, method="higher")
    eligible = np.flatnonzero((counts >= events + 2) & (train.timestamps[last] >= cut))
    if not len(eligible):
        return train, None
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(eligible, min(users, len(eligible)), replace=False))
    keep = np.ones(len(train), dtype=bool)
    for j in range(events):
        keep[last[chosen] - j] = False
    rest = train.select(keep)
    return rest, make_task(rest, train.select(~keep))


def predict_ranks(
    model: KAN, events: Sequence[OnlineEvent], n_items: int
) -> np.ndarray:
    """Full-ranking 0-based rank of each event's item, seen items excluded."""
    histories = [History(e.history, e.history_timestamps, user=e.user) for e in events]
    scores = model.score(histories)  # (B, N)
    targets = np.zeros((len(events), n_items), dtype=bool)
    exclude = np.zeros((len(events), n_items), dtype=bool)
    for r, e in enumerate(events):
        targets[r, e.item] = True
        exclude[r, e.history] = True
    _, ranks, _ = target_ranks(scores, targets, exclude & ~targets)
    return ranks


def training_events(
    data: Interactions, cfg: PrequentialConfig
) -> tuple[Interactions, EvalTask | None]:
    """What the factory is given (the events before ``train_end`` minus the
    guard targets) and the guard task."""
    t = data.timestamps
    t_train = np.quantile(t, cfg.train_end, method="higher")
    return hold_out_guard(
        data.select(t < t_train), cfg.guard_users, cfg.guard_fraction, cfg.seed,
        cfg.guard_events,
    )  # fmt: skip


def run_prequential(
    data: Interactions,
    factory: ModelFactory,
    config: PrequentialConfig | None = None,
    online: OnlineConfig | None = None,
) -> PrequentialResult:
    """Train on the first part of time, then replay the stream per variant."""
    cfg = config or PrequentialConfig()
    online = online or OnlineConfig()
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; use {list(VARIANTS)}")
    t = data.timestamps
    t_train = np.quantile(t, cfg.train_end, method="higher")
    upto = data
    if cfg.stream_end < 1:
        t_stop = np.quantile(t, cfg.stream_end, method="higher")
        upto = data.select(t < t_stop)
    train, guard = training_events(data, cfg)
    started = time.perf_counter()
    model = factory(train)
    fit_seconds = time.perf_counter() - started
    events = stream_events(upto, upto.timestamps >= t_train)
    if not events:
        raise ValueError("the stream is empty: lower train_end or raise stream_end")
    n = data.n_items
    rng = np.random.default_rng(cfg.seed)
    size = len(events) if cfg.predict_sample is None else cfg.predict_sample
    predicted = np.sort(rng.choice(len(events), min(size, len(events)), replace=False))
    in_train_users = np.zeros(data.n_users, dtype=bool)
    in_train_users[train.user_index] = True
    in_train_items = train.item_counts() > 0
    known = np.asarray([in_train_users[events[i].user or 0] for i in predicted])
    new_item = np.asarray([not in_train_items[events[i].item] for i in predicted])
    logger.info(
        "prequential %s: %d training events, %d streamed, %d predicted",
        data.name, len(train), len(events), len(predicted),
    )  # fmt: skip
    results = {}
    for name in cfg.variants:
        results[name] = _run_variant(
            name, clone_kan(model), events, predicted, n, cfg, online, guard
        )
    return PrequentialResult(
        data=data.name, config=cfg, online=online, train_events=len(train),
        stream_events=len(events), predicted=predicted, known_user=known,
        new_item=new_item, variants=results, fit_seconds=fit_seconds,
    )  # fmt: skip


def _run_variant(
    name: str,
    model: KAN,
    events: list[OnlineEvent],
    predicted: np.ndarray,
    n_items: int,
    cfg: PrequentialConfig,
    online: OnlineConfig,
    guard: EvalTask | None,
) -> VariantResult:
    tables, weights = VARIANTS[name]
    learner = None
    if tables or weights:
        learner = OnlineLearner(
            model,
            OnlineConfig(
                **{
                    **online.model_dump(),
                    "update_tables": tables,
                    "update_weights": weights,
                }
            ),
            guard_task=guard if weights else None,
        )
    ranks = np.zeros(len(predicted), dtype=np.int64)
    result = VariantResult(name, np.zeros(0), np.zeros(0), ranks)
    is_predicted = np.zeros(len(events), dtype=bool)
    is_predicted[predicted] = True
    slot = np.cumsum(is_predicted) - 1  # stream position -> row of ``ranks``
    started = last_log = time.perf_counter()
    n_batches = -(-len(events) // cfg.batch_size)
    for b, s in enumerate(range(0, len(events), cfg.batch_size)):
        batch = events[s : s + cfg.batch_size]
        rows = np.flatnonzero(is_predicted[s : s + cfg.batch_size])
        if len(rows):
            t0 = time.perf_counter()
            ranks[slot[s + rows]] = predict_ranks(
                model, [batch[r] for r in rows], n_items
            )
            result.predict_seconds += time.perf_counter() - t0
        if learner is not None:
            report = learner.observe(batch)
            result.learn_seconds += report.seconds
            result.batch_ms.append(report.seconds * 1e3)
            result.events_learned += report.events
            result.guards += report.guard is not None
            result.rollbacks += report.rolled_back
        now = time.perf_counter()
        if now - last_log >= cfg.log_every_s:
            last_log = now
            eta = (now - started) / (b + 1) * (n_batches - b - 1)
            logger.info(
                "prequential %s: batch %d/%d, %.0fs, eta %.0fs",
                name, b + 1, n_batches, now - started, eta,
            )  # fmt: skip
    gains = 1.0 / np.log2(ranks + 2.0)
    result.hr = (ranks < cfg.k).astype(np.float64)
    result.ndcg = np.where(ranks < cfg.k, gains, 0.0)
    logger.info(
        "prequential %s: ndcg@%d %.4f hr@%d %.4f (%.0fs)",
        name, cfg.k, result.ndcg.mean(), cfg.k, result.hr.mean(),
        time.perf_counter() - started,
    )  # fmt: skip
    return result
