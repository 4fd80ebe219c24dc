"""The online KAN in the product: one learner, versioned snapshots, every
serving process follows.

- **Learning** (``online_learn``, the Celery task ``recommendations.online_learn``
  on the queue ``online``, which one worker process consumes with concurrency
  1, so there is one learner): after the coordinator applied a batch
  (``learning.signals.events_applied``), the batch's events — each with the
  user's history before it — go to the engine's ``OnlineLearner`` over the
  current artifact version's KAN (feature tables updated incrementally, SGD
  on the weights, the guard on a held-out slice of the log rolls a harmful
  update back). Movies the model has never seen are skipped (a retrain
  brings them in).
- **Snapshots**: when the guard accepts an update, the KAN is written with
  its ONNX graph to ``<APEX_ARTIFACTS_DIR>/.online/<version>/<seq>/`` (beside
  the version, which its manifest keeps checksummed) and announced in the
  shared cache (``ONLINE_KEY``). A restarted learner resumes from the newest
  snapshot of the current version. Each snapshot also holds ``online.json``:
  its sequence number and how many events the learner had applied since the
  version was made (what a fold records).
- **Folding** (``recommendations/online_fold.py``): a periodic job writes the
  newest snapshot into a new artifact version and activates it, so a restart
  keeps what was learned; ``rekey`` then carries the running learner over to
  the new version without reloading it.
- **Serving**: each serving process polls the key with the reload counter
  (``ServingRuntime._maybe_follow``, every ``APEX_RELOAD_POLL_SECONDS``) and
  swaps its KAN member for the snapshot — ``Recommender.load`` on tier 1,
  ``OnnxScorer`` on tier 2; tier 3 has no KAN — beside the old engine
  (``ServingEngine.with_member``). A freshly loaded version starts from its
  newest snapshot too (``with_online_snapshot`` in the runtime's loader).
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache

from learning import selectors as learning_selectors

logger = logging.getLogger(__name__)

ONLINE_KEY = "serving:online"
MEMBER = "kan"
GUARD_USERS = 200
_DONE = "COMPLETE"  # written last: a snapshot folder without it is ignored
SNAPSHOT_INFO = "online.json"  # seq, events learned since the version was made


def online_root(version: str) -> Path:
    return Path(settings.APEX_ARTIFACTS_DIR) / ".online" / version


def latest_snapshot(version: str) -> tuple[int, Path] | None:
    """The newest complete snapshot of ``version``: ``(seq, folder)``."""
    root = online_root(version)
    if not root.is_dir():
        return None
    found = [
        (int(p.name), p)
        for p in root.iterdir()
        if p.name.isdigit() and (p / _DONE).exists()
    ]
    return max(found) if found else None


def snapshot_info(folder: Path) -> dict[str, Any]:
    """A snapshot's ``online.json`` (``{}`` for one written before it existed)."""
    try:
        value = json.loads((folder / SNAPSHOT_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def announced() -> dict[str, Any] | None:
    try:
        value = cache.get(ONLINE_KEY)
    except Exception:  # noqa: BLE001 - a cache outage must not stop serving
        return None
    return value if isinstance(value, dict) else None


# ------------------------------------------------------------------ learner
@dataclass
class _State:
    version: str
    learner: Any  # engine.online.OnlineLearner
    seq: int
    events: int = 0  # events applied since ``version`` was made


_state: _State | None = None
_lock = threading.Lock()


def _current_version() -> str | None:
    from recommendations.serving.artifacts import ArtifactStore

    root = Path(settings.APEX_ARTIFACTS_DIR)
    return ArtifactStore(root).current_version() if root.is_dir() else None


def _guard_task(model: Any) -> Any:
    """The guard's held-out slice: sampled users' last positive movie of the
    log, from the rest of their history (movies the model knows only)."""
    import numpy as np
    import scipy.sparse as sp

    from recommendations.engine.data.interactions import History
    from recommendations.engine.data.splits import EvalTask

    items = model.items
    histories, targets = [], []
    for movies in learning_selectors.holdout_histories(users=GUARD_USERS):
        known = [m for m in movies if m in items]
        if len(known) < 2:
            continue
        dense = items.index(known)
        histories.append(History(np.asarray(dense[:-1], dtype=np.int64)))
        targets.append(int(dense[-1]))
    if not histories:
        return None
    n, rows = model.n_items, len(histories)
    exclude = sp.csr_matrix(
        (
            np.ones(sum(len(h.items) for h in histories), np.float32),
            (np.repeat(np.arange(rows), [len(h.items) for h in histories]),
             np.concatenate([h.items for h in histories])),
        ),
        shape=(rows, n),
    )  # fmt: skip
    target = sp.csr_matrix(
        (np.ones(rows, np.float32), (np.arange(rows), np.asarray(targets))),
        shape=(rows, n),
    )
    return EvalTask(np.arange(rows), histories, exclude, target)


def _load_state(version: str) -> _State | None:
    from recommendations.engine.serving import bundle as B

    store = Path(settings.APEX_ARTIFACTS_DIR) / version
    member = store / B.ENSEMBLE_DIR / "members" / MEMBER
    latest = latest_snapshot(version)
    folder = latest[1] if latest else member
    if not (folder / "model.json").exists():
        return None  # this version has no KAN member
    from recommendations.engine.models.base import Recommender
    from recommendations.engine.online import OnlineLearner

    model = Recommender.load(folder)
    learner = OnlineLearner(
        model,
        guard_task=_guard_task(model),
        guard_every=settings.APEX_ONLINE_GUARD_EVERY,
        guard_margin=settings.APEX_ONLINE_GUARD_MARGIN,
    )
    events = int(snapshot_info(folder).get("events", 0)) if latest else 0
    logger.info(
        "online learner ready",
        extra={"artifact_version": version, "snapshot": latest[0] if latest else 0},
    )
    return _State(version, learner, latest[0] if latest else 0, events)


def _learner() -> _State | None:
    global _state
    version = _current_version()
    if version is None:
        return None
    if _state is None or _state.version != version:
        _state = _load_state(version)
    return _state


def online_learn(*, event_ids: list[int]) -> dict[str, Any]:
    """Apply the events to the online KAN; publish a snapshot when the guard
    accepts the update (module docstring)."""
    with _lock:
        state = _learner()
        if state is None:
            return {"events": 0, "skipped": "no artifacts with a KAN member"}
        import numpy as np

        from recommendations.engine.online import OnlineEvent

        items = state.learner.model.items
        events = []
        for row in learning_selectors.events_with_history(event_ids=event_ids):
            if row["movie_id"] not in items:
                continue
            known = [(m, at) for m, at in row["history"] if m in items]
            events.append(
                OnlineEvent(
                    history=np.asarray(
                        items.index([m for m, _ in known]) if known else [], np.int64
                    ),
                    history_timestamps=np.asarray([at for _, at in known], float),
                    item=int(items.index([row["movie_id"]])[0]),
                    timestamp=row["at"],
                    positive=row["positive"],
                )
            )
        if not events:
            return {"events": 0}
        report = state.learner.observe(events)
        state.events += report.events
        published = None
        if report.published:
            published = _publish(state)
        return {
            "events": report.events,
            "loss": report.loss,
            "rolled_back": report.rolled_back,
            "published": published,
            "seconds": round(report.seconds, 4),
        }


def _publish(state: _State) -> int:
    """Write the learner's model as the next snapshot and announce it."""
    from recommendations.engine.onnx.scorer import save_for_serving

    started = time.perf_counter()
    state.seq += 1
    root = online_root(state.version)
    staging = root / f".{state.seq}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    save_for_serving(state.learner.model, staging, int8=False)
    info = {
        "version": state.version,
        "seq": state.seq,
        "events": state.events,
        "published_at": datetime.now(UTC).isoformat(),
    }
    (staging / SNAPSHOT_INFO).write_text(json.dumps(info), encoding="utf-8")
    (staging / _DONE).write_text(str(state.seq))
    final = root / str(state.seq)
    staging.rename(final)
    for old in root.iterdir():  # keep the newest three
        if old.name.isdigit() and int(old.name) <= state.seq - 3:
            shutil.rmtree(old, ignore_errors=True)
    try:
        cache.set(ONLINE_KEY, {"version": state.version, "seq": state.seq}, None)
    except Exception as exc:  # noqa: BLE001 - serving picks it up on load
        logger.warning("could not announce the online snapshot: %s", exc)
    logger.info(
        "online snapshot published",
        extra={
            "artifact_version": state.version,
            "seq": state.seq,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
    return state.seq


def rekey(base: str, version: str, *, folded_events: int) -> bool:
    """After a fold of ``base`` into ``version``: the running learner (if this
    process holds one of ``base``) goes on as the learner of ``version``, with
    its in-memory state — updates not yet published included — and numbers
    its snapshots of ``version`` from 1; of its event count, what the folded
    snapshot held moves into the new version. Call with ``fold_lock`` held."""
    global _state
    if _state is None or _state.version != base:
        return False
    carried = max(_state.events - folded_events, 0)
    _state = _State(version, _state.learner, 0, carried)
    return True


def fold_lock() -> threading.Lock:
    """The lock ``online_learn`` holds: a fold in the learner's process waits
    for a batch in progress and no batch starts during the fold."""
    return _lock


def reset_online_learner() -> None:
    """Forget this process's learner (tests)."""
    global _state
    with _lock:
        _state = None


# ------------------------------------------------------------------ serving
def snapshot_scorer(folder: Path, tier: int) -> Any:
    """The KAN of a snapshot as the tier scores it."""
    if tier == 1:
        from recommendations.engine.models.base import Recommender

        return Recommender.load(folder)
    from recommendations.engine.onnx.scorer import OnnxScorer

    return OnnxScorer(folder, precision="fp32")


def with_online_snapshot(engine: Any, version: str, seq: int | None = None) -> Any:
    """``engine`` with its KAN member swapped for the newest snapshot of
    ``version`` (at least ``seq``); ``engine`` itself when there is none, or
    the tier has no KAN."""
    if getattr(engine, "ensemble", None) is None or MEMBER not in getattr(
        engine.ensemble, "members", {}
    ):
        return engine
    latest = latest_snapshot(version)
    if latest is None or (seq is not None and latest[0] < seq):
        return engine
    return engine.with_member(MEMBER, snapshot_scorer(latest[1], engine.tier))
