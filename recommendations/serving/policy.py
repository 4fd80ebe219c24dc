"""The failure policy of every served list: never a 500.

One request opens one :class:`Serving`: the serving bundle is read once, so a
reload mid-request cannot mix two versions. Every engine call goes through
:meth:`Serving.ask`, the one place that catches:

- ``UnknownItemError`` (a movie added after the artifacts were trained):
  expected, not a failure; one INFO line and the fallback for that call;
- ``ApplicationError`` from the runtime (missing or corrupt artifacts, no
  engine in the bundle) and ``EngineError`` (the engine's own errors);
- anything else, as the last resort (a bug in a model must not become a 500).

After the first failure the rest of the request (the other rows of a page)
goes straight to the fallback and exactly one WARNING is logged. The
fallback lists come from the database (``catalog`` / ``learning``
selectors); their ``meta.fallback`` is true and ``meta.fallback_reason``
says why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from apex_site.errors import ApplicationError
from recommendations.engine.errors import EngineError, UnknownItemError
from recommendations.errors import RecommendationsErrorCode as Code
from recommendations.results import FeedMeta, Served
from recommendations.serving.result_cache import get_result_cache
from recommendations.serving.runtime import ServingBundle, get_runtime

logger = logging.getLogger(__name__)

Fallback = Callable[[], tuple[list[int], str | None]]
"""A database list: the ids and the one reason shown for all of them."""


@dataclass(frozen=True)
class Failure:
    reason: str  # ``meta.fallback_reason``
    message: str


_UNKNOWN = object()  # ``ask``'s answer for an item the engine has never seen


@dataclass
class Serving:
    """What one request uses (see the module docstring)."""

    bundle: ServingBundle | None = None
    failure: Failure | None = None
    logged: bool = False
    # an experiment variant's weights version (``None``: the active one); the
    # bundle's engine is then that version's re-weighted copy, and its answers
    # are cached under the base bundle with the version in the key
    weights_version: int | None = None
    cache_bundle: ServingBundle | None = None

    @classmethod
    def open(cls) -> Serving:
        serving = cls()
        # quiet: the WARNING names the first list that had to fall back
        serving.bundle = serving.ask("bundle", lambda _: _load_bundle(), quiet=True)
        return serving

    @property
    def engine(self) -> Any:
        return None if self.bundle is None else self.bundle.payload

    def with_weights_version(self, version: int | None) -> Serving:
        """This request served with weights ``version`` (an experiment
        variant's). Itself when ``version`` is ``None``, when nothing is
        loaded, or when the version cannot be applied to the loaded engine
        (one WARNING per version and bundle; the active weights serve and
        ``meta.weights_version`` stays ``None``, so the log says what was
        really served)."""
        if version is None or self.bundle is None or self.failure is not None:
            return self
        engine = _reweighted(self.bundle.payload, version)
        if engine is None:
            return self
        return Serving(
            bundle=replace(self.bundle, payload=engine),
            weights_version=version,
            cache_bundle=self.bundle,
        )

    def ask(self, what: str, call: Callable[[Any], Any], *, quiet: bool = False) -> Any:
        """``call(engine)``, or ``None`` when it failed (the failure is kept
        and warned about once) or ``_UNKNOWN`` for an unknown item (test
        with :func:`is_answer`)."""
        if self.failure is not None:
            self.warn_once(what)
            return None
        try:
            return call(self.engine)
        except UnknownItemError as exc:  # expected: not a failure
            logger.info("recommendations: %s: unknown to the engine (%s)", what, exc)
            return _UNKNOWN
        except ApplicationError as exc:  # the runtime: nothing loadable
            self.failure = Failure(exc.code, exc.message)
        except EngineError as exc:
            self.failure = Failure(Code.ENGINE_ERROR, _describe(exc))
        except Exception as exc:  # the one last-resort catch: never a 500
            self.failure = Failure(
                Code.ENGINE_ERROR if self.bundle else Code.SERVING_ERROR,
                _describe(exc),
            )
        if not quiet:
            self.warn_once(what)
        return None

    def warn_once(self, what: str) -> None:
        """The one WARNING of this request's serving failure."""
        if self.logged or self.failure is None:
            return
        self.logged = True
        logger.warning(
            "recommendations: %s served from the database fallback (%s: %s)",
            what,
            self.failure.reason,
            self.failure.message,
        )

    def fallback_reason(self) -> str:
        return self.failure.reason if self.failure else Code.UNKNOWN_ITEM

    def db_meta(
        self,
        *,
        scorer: str = "trending",
        fallback_reason: str | None = None,
        timings_ms: dict[str, float] | None = None,
    ) -> FeedMeta:
        """Meta of a list served from the database (trending, or the fallback
        when ``fallback_reason`` is given), not by the engine."""
        bundle = self.bundle
        return FeedMeta(
            tier=bundle.tier.tier if bundle else None,
            tier_name=bundle.tier.name if bundle else None,
            fallback=fallback_reason is not None,
            fallback_reason=fallback_reason,
            gate_fired=False,
            scorer=scorer,
            artifact_version=bundle.version if bundle else None,
            timings_ms=timings_ms or {},
        )

    def serve(
        self,
        what: str,
        call: Callable[[Any], Any],
        fallback: Fallback,
        cache_key: tuple[Any, ...] | None = None,
    ) -> Served:
        """Ask the engine for a list; on any failure serve ``fallback()``.

        ``cache_key``: everything the engine's answer depends on besides the
        bundle; the answer is then served from the per-process result cache
        (``recommendations.serving.result_cache``) while the bundle stays.
        """
        started = time.perf_counter()
        if self.failure is None and self.bundle is not None:
            cache = get_result_cache() if cache_key is not None else None
            cache_bundle = self.cache_bundle or self.bundle
            if cache_key is not None and self.weights_version is not None:
                cache_key = ("weights", self.weights_version, *cache_key)
            if cache is not None:
                hit = cache.get(cache_bundle, cache_key)
                if hit is not None:
                    elapsed = round(1e3 * (time.perf_counter() - started), 3)
                    return replace(
                        hit,
                        meta=replace(
                            hit.meta, cached=True, timings_ms={"cache": elapsed}
                        ),
                    )
            answer = self.ask(what, call)
            if is_answer(answer):
                served = self._from_engine(
                    answer, 1e3 * (time.perf_counter() - started)
                )
                if cache is not None and not served.meta.fallback:
                    cache.put(cache_bundle, cache_key, served)
                return served
        else:
            self.warn_once(what)
        fb_started = time.perf_counter()
        ids, why = fallback()
        meta = self.db_meta(
            scorer="database",
            fallback_reason=self.fallback_reason(),
            timings_ms={"fallback": round(1e3 * (time.perf_counter() - fb_started), 3)},
        )
        return Served(ids, [None] * len(ids), [why] * len(ids), meta)

    def _from_engine(self, served: Any, elapsed_ms: float) -> Served:
        assert self.bundle is not None
        flags = getattr(served, "flags", None)
        ids = [int(i) for i in served.item_ids]
        scores: list[float | None] = [float(s) for s in served.scores]
        reasons = list(getattr(served, "reasons", None) or [None] * len(ids))
        timings = {
            str(k): round(float(v), 3)
            for k, v in (getattr(served, "timings_ms", None) or {}).items()
        }
        timings.setdefault("engine", round(elapsed_ms, 3))  # the engine's own clock
        meta = replace(
            self.db_meta(
                scorer=str(_flag(flags, "scorer", "ensemble")), timings_ms=timings
            ),
            fallback=bool(_flag(flags, "fallback", False)),
            gate_fired=bool(_flag(flags, "gate_fired", False)),
            policy=str(_flag(flags, "policy", "greedy")),
            weights_version=self.weights_version,
        )
        propensities = [float(p) for p in getattr(served, "propensities", ()) or ()]
        if len(propensities) != len(ids):
            propensities = []
        candidates = getattr(served, "candidates", None)
        return Served(
            ids, scores, reasons, meta, propensities or None,
            dict(candidates) if candidates else None,
        )  # fmt: skip


_variants_lock = threading.Lock()
# weights version -> (the base engine it was derived from, the re-weighted
# engine or ``None`` when the version does not apply); a new bundle (reload,
# new active weights) is a new base, so stale entries are rebuilt lazily
_variants: dict[int, tuple[Any, Any]] = {}


def _reweighted(base: Any, version: int) -> Any:
    with _variants_lock:
        hit = _variants.get(version)
    if hit is not None and hit[0] is base:
        return hit[1]
    from recommendations import services  # the serving layer sits below them

    try:
        engine = services.ensemble_weights_engine(engine=base, version=version)
    except ApplicationError as exc:
        logger.warning(
            "experiment weights not applied; serving the active weights",
            extra={"weights_version": version, "code": exc.code, "error": exc.message},
        )
        engine = None
    with _variants_lock:
        if len(_variants) > 32:  # versions of retired experiments
            _variants.clear()
        _variants[version] = (base, engine)
    return engine


def is_answer(value: Any) -> bool:
    """Whether ``Serving.ask`` returned the engine's answer (not a fallback)."""
    return value is not None and value is not _UNKNOWN


def _load_bundle() -> ServingBundle:
    bundle = get_runtime().get()  # ServingUnavailable / ArtifactLoadFailed
    if not callable(getattr(bundle.payload, "recommend", None)):
        raise ApplicationError(
            f"artifact version {bundle.version} loaded no serving engine",
            code=Code.NO_ENGINE,
        )
    return bundle


def _describe(exc: BaseException) -> str:
    return f"engine raised {type(exc).__name__}: {exc}"


def _flag(flags: Any, name: str, default: Any = None) -> Any:
    if isinstance(flags, Mapping):
        return flags.get(name, default)
    return getattr(flags, name, default)
