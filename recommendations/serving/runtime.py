"""The process-wide serving state: the loaded bundle of the current version.

Readers call ``get()`` and receive an immutable ``ServingBundle``; a reload
builds the new bundle beside the old one and then rebinds one attribute, which
is atomic in Python, so a request holds either the old bundle or the new one,
never a mixture, and readers never take a lock. Reloads are serialised by a
lock among themselves. A failed reload keeps the old bundle and records the
error.

Nothing loads until the first ``get()`` or an explicit ``warm_up()``, so
``migrate`` and management commands never touch models.

Several processes: a reload answered by one process is announced through a
shared counter, and every runtime follows it (``broadcast`` module): ``get()``
reads the counter at most once per ``poll_s`` seconds and, when it moved,
reloads or re-weights in a background thread while requests keep the old
bundle. The loader is a plain
callable ``load(version_dir, manifest, tier) -> object``; the default loads the
version as a ``recommendations.engine.serving.ServingEngine`` on the tier.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rest_framework import status

from apex_site.errors import ApplicationError
from recommendations.errors import RecommendationsErrorCode

from .artifacts import ArtifactStore, Manifest, read_manifest, verify_dir
from .tiers import (
    TIER_NAMES,
    NoTierLoadable,
    TierDecision,
    TierUnavailable,
    load_with_downgrade,
    select_tier_from_settings,
)

logger = logging.getLogger(__name__)

Loader = Callable[[Path, Manifest, TierDecision], object]


def default_loader(version_dir: Path, manifest: Manifest, tier: TierDecision) -> Any:
    """Load the version as a ``ServingEngine`` on ``tier`` (checksums are verified
    before this). A load error propagates, so the runtime steps down a tier."""
    from recommendations.engine.serving import ServingEngine

    device = tier.device if tier.tier == 1 else None
    engine = ServingEngine.load(version_dir, tier.tier, device=device)
    engine = with_active_weights(engine)
    # the online learner's newest snapshot of this version, if any
    from recommendations.online import with_online_snapshot

    try:
        return with_online_snapshot(engine, manifest.version)
    except Exception as exc:  # noqa: BLE001 - the offline model still serves
        logger.warning("could not load the online snapshot (%s); serving without", exc)
        return engine


def with_active_weights(engine: Any) -> Any:
    """Blend with the admin's active ``EnsembleWeights`` version when it fits
    (``services.ensemble_weights_apply``, as the admin API).

    A version that does not fit the bundle (e.g. a member without an ONNX
    graph on tier 2) is not applied: the bundle's own weights stay, with one
    WARNING; so does an unreadable database (serving must not stop).
    """
    from recommendations import services

    try:
        active = services.ensemble_weights_active()
    except Exception as exc:  # noqa: BLE001 - no database must not stop serving
        logger.warning("could not read the active ensemble weights: %s", exc)
        return engine
    if active is None:
        return engine
    try:
        return services.ensemble_weights_apply(engine=engine, weights=active)
    except ApplicationError as exc:
        logger.warning(
            "active ensemble weights v%s do not fit this artifact version (%s); "
            "serving the weights it was built with",
            active.version,
            exc.message,
        )
        return engine


def default_store() -> ArtifactStore:
    from django.conf import settings

    return ArtifactStore(settings.APEX_ARTIFACTS_DIR)


@dataclass(frozen=True)
class ServingBundle:
    """Everything one request needs, loaded together and swapped together."""

    version: str
    manifest: Manifest
    tier: TierDecision
    payload: Any
    loaded_at: datetime
    load_ms: float


class ArtifactLoadFailed(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(self, version: str, reason: str, active: str | None) -> None:
        super().__init__(
            f"Artifact version {version!r} could not be loaded: {reason}",
            code=RecommendationsErrorCode.ARTIFACT_LOAD_FAILED,
            detail={"version": version, "reason": reason, "active_version": active},
        )


class ServingUnavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(
            message, code=RecommendationsErrorCode.SERVING_UNAVAILABLE, detail=detail
        )


@dataclass(frozen=True)
class ReloadResult:
    version: str
    previous_version: str | None
    tier: TierDecision
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous_version": self.previous_version,
            "tier": self.tier.as_dict(),
            "duration_ms": self.duration_ms,
        }


def _tier_files_check(manifest: Manifest, tier: TierDecision) -> None:
    """Missing artifacts for a tier: the manifest declares tiers, not this one."""
    if manifest.tiers and tier.name not in manifest.tiers:
        declared = ", ".join(sorted(manifest.tiers)) or "none"
        raise TierUnavailable(
            f"version {manifest.version} has no {tier.name} artifacts "
            f"(declares: {declared})"
        )


class ServingRuntime:
    """Holds the active ``ServingBundle``; thread-safe, lock-free for readers."""

    def __init__(
        self,
        *,
        store: Callable[[], ArtifactStore] | ArtifactStore = default_store,
        loader: Loader = default_loader,
        decide: Callable[[], TierDecision] = select_tier_from_settings,
        verify: bool = True,
        retry_after_s: float = 30.0,
        generation: Callable[[], int | None] | None = None,
        poll_s: float | None = None,
    ) -> None:
        """``generation``: reads the shared reload counter (default:
        ``broadcast.current_generation``); ``poll_s``: how often ``get()``
        reads it (default ``settings.APEX_RELOAD_POLL_SECONDS``; 0: never)."""
        self._generation = generation
        self._poll_s = poll_s
        self._next_poll = 0.0
        self._seen: int | None = None
        self._online_seen: tuple[str, int] | None = None
        self._following = False
        self._store = store
        self._loader = loader
        self._decide = decide
        self._verify = verify
        self._retry_after_s = retry_after_s
        self._failed_at: float | None = None
        self._bundle: ServingBundle | None = None
        self._decision: TierDecision | None = None
        self._last_error: dict[str, Any] | None = None
        self._lock = threading.Lock()  # serialises loads
        self._decision_lock = threading.Lock()

    # ------------------------------------------------------------ parts
    @property
    def store(self) -> ArtifactStore:
        return self._store if isinstance(self._store, ArtifactStore) else self._store()

    def decision(self) -> TierDecision:
        """The tier chosen from the setting and the hardware (before downgrade),
        computed once per process."""
        decision = self._decision
        if decision is None:
            with self._decision_lock:
                if self._decision is None:
                    self._decision = self._decide()
                    logger.info(
                        "serving tier %d (%s): %s",
                        self._decision.tier,
                        self._decision.name,
                        self._decision.reason,
                    )
                decision = self._decision
        return decision

    # ------------------------------------------------------------ reading
    def peek(self) -> ServingBundle | None:
        """The active bundle without loading anything."""
        return self._bundle

    def get(self) -> ServingBundle:
        """The active bundle, loading the current version on first use.

        Raises ``ServingUnavailable`` when nothing can be loaded; after a failed
        first load it waits ``retry_after_s`` before trying again, so broken
        artifacts do not cost a checksum pass on every request.
        """
        bundle = self._bundle
        if bundle is not None:
            self._maybe_follow()
            return bundle
        with self._lock:
            if self._bundle is None:
                failed_at = self._failed_at
                if (
                    failed_at is not None
                    and time.monotonic() - failed_at < self._retry_after_s
                ):
                    raise ServingUnavailable(
                        "No artifact version is loaded.", detail=self._last_error
                    )
                try:
                    self._reload_locked(None)
                except ApplicationError as exc:
                    raise ServingUnavailable(exc.message, detail=exc.detail) from exc
            assert self._bundle is not None
            return self._bundle

    def warm_up(self) -> ServingBundle:
        return self.get()

    # ------------------------------------------------------------ following
    def _read_generation(self) -> int | None:
        if self._generation is None:
            from .broadcast import current_generation

            self._generation = current_generation
        return self._generation()

    def mark_seen(self, generation: int | None) -> None:
        """This process already holds the state of ``generation`` (it made it)."""
        if generation is not None:
            self._seen = generation

    def _maybe_follow(self) -> None:
        now = time.monotonic()
        if now < self._next_poll or self._following:
            return
        if self._poll_s is None:
            from django.conf import settings

            self._poll_s = float(getattr(settings, "APEX_RELOAD_POLL_SECONDS", 2.0))
        if self._poll_s <= 0:
            self._next_poll = float("inf")
            return
        self._next_poll = now + self._poll_s
        self._maybe_follow_online()
        if self._following:
            return
        generation = self._read_generation()
        if generation is None or generation == self._seen:
            return
        self._following = True
        threading.Thread(
            target=self.follow, args=(generation,), name="apex-reload", daemon=True
        ).start()

    def follow(self, generation: int) -> None:
        """Bring this process in line with an announced reload (see module doc)."""
        try:
            bundle = self._bundle
            current = self.store.current_version()
            if bundle is None or (current is not None and current != bundle.version):
                self.reload()
                what = f"artifact version {current}"
            else:
                self.replace_payload(with_active_weights)
                what = "the active ensemble weights"
            logger.info("followed reload %d of another process: %s", generation, what)
        except Exception as exc:  # noqa: BLE001 - keep serving the old bundle
            logger.error(
                "could not follow reload %d of another process (%s); serving "
                "the old state", generation, exc,
            )  # fmt: skip
        finally:
            self._seen = generation
            self._following = False
            _close_thread_connections()

    def _maybe_follow_online(self) -> None:
        """Swap in the online learner's newest announced KAN snapshot of the
        loaded version (``recommendations.online``), in the background."""
        from recommendations import online

        note = online.announced()
        bundle = self._bundle
        if not note or bundle is None or note.get("version") != bundle.version:
            return
        key = (bundle.version, int(note.get("seq", 0)))
        if key == self._online_seen:
            return
        self._online_seen = key
        self._following = True
        threading.Thread(
            target=self.follow_online, args=key, name="apex-online", daemon=True
        ).start()

    def follow_online(self, version: str, seq: int) -> None:
        from recommendations import online

        try:
            self.replace_payload(
                lambda engine: online.with_online_snapshot(engine, version, seq)
            )
            logger.info("serving online snapshot %d of %s", seq, version)
        except Exception as exc:  # noqa: BLE001 - keep serving the old member
            logger.error(
                "could not load online snapshot %d of %s: %s", seq, version, exc
            )
        finally:
            self._following = False
            _close_thread_connections()

    # ------------------------------------------------------------ loading
    def reload(self, version: str | None = None) -> ReloadResult:
        """Load ``version`` (default: the store's current) beside the active
        bundle, make it current, then swap. On failure the active bundle stays
        and the error is raised (``ArtifactLoadFailed`` or a store error)."""
        with self._lock:
            return self._reload_locked(version)

    def _reload_locked(self, version: str | None) -> ReloadResult:
        started = time.perf_counter()
        if self._seen is None:  # what is loaded now is at least this generation
            self._seen = self._read_generation()
        previous = self._bundle.version if self._bundle else None
        store = self.store
        try:
            target = version or store.require_current()
            folder = store.path(target)
        except ApplicationError as exc:
            self._record_error(version, exc.message)
            raise
        try:
            if self._verify:
                report = verify_dir(folder, target)
                if not report.ok:
                    raise ValueError(
                        "checksum verification failed: " + _summarise(report.as_dict())
                    )
            manifest = read_manifest(folder)

            def attempt(tier: TierDecision) -> Any:
                _tier_files_check(manifest, tier)
                return self._loader(folder, manifest, tier)

            tier, payload = load_with_downgrade(self.decision(), attempt)
        except (NoTierLoadable, ValueError, ApplicationError) as exc:
            reason = exc.message if isinstance(exc, ApplicationError) else str(exc)
            self._record_error(target, reason)
            logger.error("reload of artifact version %s failed: %s", target, reason)
            raise ArtifactLoadFailed(target, reason, previous) from exc
        if version is not None and store.current_version() != target:
            store.set_current(target)
        elapsed = round((time.perf_counter() - started) * 1e3, 2)
        self._bundle = ServingBundle(
            version=target,
            manifest=manifest,
            tier=tier,
            payload=payload,
            loaded_at=datetime.now(UTC),
            load_ms=elapsed,
        )  # the swap: one reference rebinding
        self._last_error = None
        self._failed_at = None
        logger.info(
            "serving artifact version %s on tier %d (%s) in %.0f ms",
            target,
            tier.tier,
            tier.name,
            elapsed,
        )
        return ReloadResult(target, previous, tier, elapsed)

    def replace_payload(self, transform: Callable[[Any], Any]) -> ServingBundle:
        """Swap in ``transform(active payload)`` (e.g. the same engine with new
        ensemble weights), same version and tier, without reloading files.

        Runs under the load lock so it cannot interleave with a reload; readers
        see the old bundle or the new one. Raises ``ServingUnavailable`` when
        nothing is loaded; if ``transform`` raises, the old bundle stays.
        """
        with self._lock:
            bundle = self._bundle
            if bundle is None:
                raise ServingUnavailable(
                    "No artifact version is loaded.", detail=self._last_error
                )
            self._bundle = replace(bundle, payload=transform(bundle.payload))
            return self._bundle

    def _record_error(self, version: str | None, reason: str) -> None:
        self._failed_at = time.monotonic()
        self._last_error = {
            "version": version,
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        }

    # ------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        """For /v1/platform/status: never loads a bundle, never raises."""
        bundle = self._bundle
        try:
            decision = bundle.tier if bundle else self.decision()
            tier: dict[str, Any] | None = decision.as_dict()
            tier_error = None
        except Exception as exc:  # a misconfigured tier shows, not a 500
            tier, tier_error = None, f"{type(exc).__name__}: {exc}"
        if bundle is not None:
            state = "ready"
        elif self._last_error is not None:
            state = "failed"
        else:
            state = "not_loaded"
        body: dict[str, Any] = {
            "state": state,
            "tier": tier,
            "artifact_version": bundle.version if bundle else None,
            "loaded_at": bundle.loaded_at.isoformat() if bundle else None,
            "last_error": self._last_error,
        }
        if tier_error:
            body["tier_error"] = tier_error
        return body


def _close_thread_connections() -> None:
    """A follow-up thread's database connection is its own: close it."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001, S110 - nothing to close outside Django
        pass


def _summarise(report: dict[str, Any]) -> str:
    parts = []
    for key in ("missing", "size_mismatches", "checksum_mismatches", "unexpected"):
        items = report[key]
        if items:
            names = [i if isinstance(i, str) else i["path"] for i in items]
            parts.append(f"{key.replace('_', ' ')}: {', '.join(names[:5])}")
    if report["manifest_error"]:
        parts.append(f"manifest: {report['manifest_error']}")
    return "; ".join(parts)


_runtime = ServingRuntime()


def get_runtime() -> ServingRuntime:
    """The process-wide runtime (tests replace it with ``set_runtime``)."""
    return _runtime


def set_runtime(runtime: ServingRuntime) -> ServingRuntime:
    """Install ``runtime`` as the process-wide one; returns the previous one."""
    global _runtime
    previous, _runtime = _runtime, runtime
    return previous


__all__ = [
    "TIER_NAMES",
    "ArtifactLoadFailed",
    "Loader",
    "ReloadResult",
    "ServingBundle",
    "ServingRuntime",
    "ServingUnavailable",
    "default_loader",
    "get_runtime",
    "set_runtime",
]
