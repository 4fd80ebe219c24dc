"""Folding the online KAN into a new artifact version (issue 13).

The online learner (``recommendations/online.py``) publishes snapshots of the
KAN beside the artifact version it learns from
(``<APEX_ARTIFACTS_DIR>/.online/<version>/<seq>/``). Serving processes follow
them, but a snapshot belongs to its version: a retrain supersedes it, and the
version's own files still hold the offline weights. ``online_fold`` makes what
was learned part of an artifact version:

1. **Nothing to fold, nothing written.** The base is the current version; its
   newest complete snapshot is what gets folded. With no snapshot of the
   current version there is nothing learned since it was made (by a training
   run or by the previous fold), and no version is written.
2. **A new version, built aside.** Into an ``ArtifactStore`` staging folder:
   every file of the base, hard-linked (artifact files are never written in
   place, so a link is a copy; a copy where links are impossible), except the
   KAN member, which is written fresh from the snapshot: the tier-1 member
   (``ensemble/members/kan/``, ``Recommender.save``) and, when the base has
   one, the tier-2 graph (``onnx/kan/``, ``save_for_serving`` with the base's
   INT8 choice), re-exported from the snapshot's weights. The KAN's feature
   tables (popularity, recent popularity, last seen, co-occurrence,
   transitions) live in its ``state.npz``, so they come along. The ANN index,
   the content model and the item files are the base's: online learning does
   not change them (a cold item's SVD embedding folded in online is the one
   exception: the ANN index keeps the trained embedding until a retrain).
3. **The manifest says where it came from**: ``notes.online_fold`` holds the
   base version, the snapshot's sequence number, the events the learner had
   applied since the base was made, when the snapshot was published, when
   the fold ran and the trained version at the root of a chain of folds.
   ``metrics`` are the base's test metrics, measured on the base's weights
   (``notes.online_fold.metrics_of``), not re-measured.
4. **Atomic.** ``ArtifactStore.commit`` checksums the files and renames the
   staging folder into place in one step; any failure before it removes the
   staging folder, and the current version stays what it was.
5. **Activated as a retrain is**: ``ArtifactStore.set_current`` then the
   serving generation is bumped (``serving.broadcast.announce``), so every
   serving process reloads the new version in the background within
   ``APEX_RELOAD_POLL_SECONDS``. A version made current by someone else during
   the fold (a retrain) wins: the fold is then committed but not activated.
6. **The learner goes on**: in the learner's process (the task runs on the
   ``online`` queue) the running learner is re-keyed to the new version
   (``online.rekey``), keeping updates not yet published; elsewhere the
   learner loads the new version's KAN — the folded weights — when it next
   runs. The folds before the newest ``FOLDS_KEPT`` are pruned, and so are
   snapshots of versions that no longer exist.

Cross-process: a file lock under ``.online/`` lets one fold run at a time;
in the learner's process ``online.fold_lock`` keeps a batch from being
applied during the fold.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apex_site.errors import ApplicationError
from recommendations import online
from recommendations.errors import RecommendationsErrorCode as Code

logger = logging.getLogger(__name__)

FOLDS_KEPT = 3
"""Folded versions kept besides the current one (trained versions are never
pruned here)."""
MEMBER_DIR = f"ensemble/members/{online.MEMBER}"
ONNX_MEMBER_DIR = f"onnx/{online.MEMBER}"
_LOCK_FILE = ".fold.lock"


@dataclass(frozen=True)
class FoldResult:
    """What ``online_fold`` did. ``folded`` False: ``reason`` says why not."""

    folded: bool
    base_version: str | None = None
    artifact_version: str | None = None
    snapshot_seq: int | None = None
    events: int | None = None
    activated: bool = False
    reason: str = ""
    seconds: float = 0.0
    pruned: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "folded": self.folded,
            "base_version": self.base_version,
            "artifact_version": self.artifact_version,
            "snapshot_seq": self.snapshot_seq,
            "events": self.events,
            "activated": self.activated,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "pruned": list(self.pruned),
        }


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    folder = root / ".online"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def online_fold() -> FoldResult:
    """Fold the newest online snapshot of the current version into a new
    artifact version and activate it (module docstring).

    Idempotent: returns ``folded=False`` without writing anything when the
    current version has no snapshot. Raises ``ApplicationError``
    (``online_fold_failed``) when the new version cannot be written; the
    current version is then unchanged and no staging folder is left.
    """
    from recommendations.serving.artifacts import ArtifactStore

    started = time.perf_counter()
    root = Path(settings.APEX_ARTIFACTS_DIR)
    if not root.is_dir():
        return FoldResult(False, reason="no artifacts folder")
    store = ArtifactStore(root)
    with online.fold_lock(), _exclusive(root):
        base = store.current_version()
        if base is None:
            return FoldResult(False, reason="no current artifact version")
        latest = online.latest_snapshot(base)
        if latest is None:
            return FoldResult(
                False, base_version=base, reason=f"nothing learned since {base}"
            )
        seq, snapshot = latest
        info = online.snapshot_info(snapshot)
        events = info.get("events")
        base_dir = store.path(base)
        if not (base_dir / MEMBER_DIR / "model.json").is_file():
            return FoldResult(
                False, base_version=base, reason=f"{base} has no KAN member"
            )
        manifest = store.manifest(base)
        staging = store.begin_version()
        try:
            tiers = _build(base_dir, snapshot, staging, manifest.tiers)
            fields = manifest.model_dump(
                mode="json", exclude={"version", "created", "files"}
            )
            fields["tiers"] = tiers
            fold_note = {
                "base_version": base,
                "snapshot_seq": seq,
                "events": events,
                "snapshot_published_at": info.get("published_at"),
                "folded_at": datetime.now(UTC).isoformat(),
                "metrics_of": base,
                # the trained version at the root of a chain of folds
                "trained_version": (manifest.notes.get("online_fold") or {}).get(
                    "trained_version", base
                ),
            }
            fields["notes"] = {**fields["notes"], "online_fold": fold_note}
            if online.MEMBER in fields["models"]:
                fields["models"][online.MEMBER] = {
                    **fields["models"][online.MEMBER],
                    "online": {"snapshot_seq": seq, "events": events},
                }
            committed = store.commit(staging, fields)
        except Exception as exc:
            store.abort(staging)
            logger.error(
                "online fold failed",
                extra={"artifact_version": base, "seq": seq, "error": repr(exc)},
            )
            raise ApplicationError(
                f"Could not fold online snapshot {seq} of {base}: {exc}",
                code=Code.ONLINE_FOLD_FAILED,
                detail={"base_version": base, "snapshot_seq": seq},
                status_code=500,
            ) from exc
        version = committed.version
        activated = store.current_version() == base
        if activated:
            _activate(store, version)
            online.rekey(base, version, folded_events=int(events or 0))
        pruned = _prune(store)
    elapsed = time.perf_counter() - started
    logger.info(
        "online state folded",
        extra={
            "artifact_version": version,
            "base_version": base,
            "seq": seq,
            "events": events,
            "activated": activated,
            "seconds": round(elapsed, 3),
        },
    )
    return FoldResult(
        True,
        base_version=base,
        artifact_version=version,
        snapshot_seq=seq,
        events=events,
        activated=activated,
        reason="" if activated else "another version became current meanwhile",
        seconds=elapsed,
        pruned=tuple(pruned),
    )


# ------------------------------------------------------------------ steps
def _build(
    base_dir: Path, snapshot: Path, staging: Path, tiers: dict[str, list[str]]
) -> dict[str, list[str]]:
    """Write the folded version into ``staging``; returns its tier file lists
    (the base's, with the KAN member's files replaced by the new ones)."""
    from recommendations.engine.models.base import Recommender

    replaced = (MEMBER_DIR, ONNX_MEMBER_DIR)
    _link_tree(base_dir, staging, skip=replaced)
    model = Recommender.load(snapshot)
    model.save(staging / MEMBER_DIR)
    if (base_dir / ONNX_MEMBER_DIR).is_dir():
        int8 = any((base_dir / ONNX_MEMBER_DIR).glob("*.int8.onnx"))
        _export_onnx(model, staging / ONNX_MEMBER_DIR, int8=int8)
    new_files = {
        prefix: sorted(
            p.relative_to(staging).as_posix()
            for p in (staging / prefix).rglob("*")
            if p.is_file()
        )
        for prefix in replaced
    }
    out: dict[str, list[str]] = {}
    for tier, files in tiers.items():
        kept = [f for f in files if not any(f.startswith(p + "/") for p in replaced)]
        for prefix in replaced:
            if any(f.startswith(prefix + "/") for f in files):
                kept.extend(new_files[prefix])
        out[tier] = kept
    return out


def _export_onnx(model: Any, folder: Path, *, int8: bool) -> None:
    """The tier-2 member: the model, its FP32 graph [and INT8 graph]."""
    from recommendations.engine.onnx.scorer import save_for_serving

    save_for_serving(model, folder, int8=int8)


def _link_tree(source: Path, target: Path, *, skip: tuple[str, ...]) -> None:
    """Every file of ``source`` but the manifest and the ``skip`` folders,
    hard-linked into ``target`` (copied where a link is impossible)."""
    from recommendations.serving.artifacts import MANIFEST_NAME

    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        rel = here.relative_to(source)
        dirnames[:] = [
            d for d in dirnames if (rel / d).as_posix() not in skip
        ]  # os.walk descends only into these
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if rel == Path(".") and name == MANIFEST_NAME:
                continue
            src, dst = here / name, target / rel / name
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def _activate(store: Any, version: str) -> None:
    """As a retrain: point ``current`` at it, then tell every serving process."""
    from recommendations.serving import broadcast

    store.set_current(version)
    broadcast.announce()


def _prune(store: Any) -> list[str]:
    """Folded versions older than the newest ``FOLDS_KEPT`` (never the current
    one, never a trained one), and the snapshots of versions that are gone."""
    from recommendations.serving.artifacts import ArtifactManifestError

    versions = store.versions()
    folds = []
    for version in versions:
        try:
            if "online_fold" in store.manifest(version).notes:
                folds.append(version)
        except ArtifactManifestError:
            continue
    doomed = set(folds[: max(len(folds) - FOLDS_KEPT, 0)])
    pruned = store.prune(0, protect=set(versions) - doomed) if doomed else []
    alive = set(store.versions())
    snapshots = store.root / ".online"
    for folder in snapshots.iterdir() if snapshots.is_dir() else ():
        if folder.is_dir() and folder.name not in alive:
            shutil.rmtree(folder, ignore_errors=True)
    return list(pruned)
