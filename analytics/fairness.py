"""Fairness and beyond-accuracy measures of top-K lists (numpy, no Django).

The exposure measures follow RecBole's definitions (``recbole/evaluator/
metrics.py``: ``GiniIndex``, ``ItemCoverage``, ``TailPercentage``), which
the tests use as oracles on tiny inputs:

- exposure Gini: the Gini coefficient of every catalog item's number of
  appearances in the lists, items never shown counting as 0;
- catalog coverage: distinct items shown / catalog size;
- long-tail share: per user, the share of their K slots taken by tail items
  (the ``tail_ratio`` least popular items by training count, ties by item
  index, as RecBole sorts them), averaged over users.

Calibration follows Steck, "Calibrated Recommendations", RecSys 2018:
``p(g|u)`` is the genre distribution of the user's history and ``q(g|u)`` of
the list, each item spreading weight 1 evenly over its genres; the
miscalibration is ``KL(p || q~)`` with ``q~ = (1 - alpha) q + alpha p``,
alpha = 0.01. Departure: every item weighs the same (Steck allows rating or
rank weights). Users whose history has no genre at all are left out.

Exposure by popularity group splits the catalog into ``n_groups`` equal
groups by training count (least popular first) and reports each group's
share of all slots: with no popularity bias every group gets 1 / n_groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recommendations.engine.evaluation.stats import mean_ci

ALPHA = 0.01
TAIL_RATIO = 0.8  # the long tail: every item outside the 20 % most popular


def exposure_counts(recommended: np.ndarray, n_items: int) -> np.ndarray:
    return np.bincount(np.asarray(recommended).ravel(), minlength=n_items)


def exposure_gini(recommended: np.ndarray, n_items: int) -> float:
    """RecBole ``GiniIndex`` of ``(U, K)`` item indices over ``n_items``."""
    counts = np.sort(exposure_counts(recommended, n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    index = np.arange(1, n_items + 1)
    return float(((2 * index - n_items - 1) * counts).sum() / (n_items * total))


def item_coverage(recommended: np.ndarray, n_items: int) -> float:
    """RecBole ``ItemCoverage``."""
    return float(len(np.unique(recommended)) / n_items)


def tail_mask(item_counts: np.ndarray, ratio: float = TAIL_RATIO) -> np.ndarray:
    """Boolean ``(N,)``: the ``ratio`` least popular items (RecBole's order:
    by count, then by item index; at least one item)."""
    n = len(item_counts)
    order = np.lexsort((np.arange(n), np.asarray(item_counts)))
    cut = max(int(n * ratio), 1)
    mask = np.zeros(n, dtype=bool)
    mask[order[:cut]] = True
    return mask


def tail_share(recommended: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Per user, the share of slots that hold tail items (RecBole
    ``TailPercentage`` at K before averaging)."""
    rec = np.asarray(recommended)
    return np.asarray(tail[rec].mean(axis=1), dtype=np.float64)


def genre_distribution(
    items: Sequence[int], item_genres: Mapping[int, Sequence[str]]
) -> dict[str, float]:
    """``p(g)`` of a list: each item spreads weight 1 over its genres."""
    weights: dict[str, float] = {}
    total = 0.0
    for item in items:
        genres = item_genres.get(int(item)) or ()
        for genre in genres:
            weights[genre] = weights.get(genre, 0.0) + 1.0 / len(genres)
        if genres:
            total += 1.0
    return {g: w / total for g, w in weights.items()} if total else {}


def calibration_kl(
    history: Sequence[int],
    recommended: Sequence[int],
    item_genres: Mapping[int, Sequence[str]],
    alpha: float = ALPHA,
) -> float | None:
    """Steck's ``KL(p || (1 - alpha) q + alpha p)`` (natural log); None when
    the history has no genre."""
    p = genre_distribution(history, item_genres)
    if not p:
        return None
    q = genre_distribution(recommended, item_genres)
    kl = 0.0
    for genre, pg in p.items():
        qg = (1 - alpha) * q.get(genre, 0.0) + alpha * pg
        kl += pg * np.log(pg / qg)
    return float(kl)


def popularity_groups(item_counts: np.ndarray, n_groups: int = 5) -> np.ndarray:
    """``(N,)`` group of each item, 0 = least popular (RecBole's order)."""
    n = len(item_counts)
    order = np.lexsort((np.arange(n), np.asarray(item_counts)))
    groups = np.empty(n, dtype=np.int64)
    groups[order] = np.arange(n) * n_groups // max(n, 1)
    return groups


def exposure_by_group(
    recommended: np.ndarray, groups: np.ndarray, n_groups: int
) -> list[float]:
    slots = groups[np.asarray(recommended).ravel()]
    counts = np.bincount(slots, minlength=n_groups).astype(np.float64)
    return [float(c) for c in counts / max(counts.sum(), 1.0)]


def _finite(summary: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (None if isinstance(v, float) and np.isnan(v) else v)
        for k, v in summary.items()
    }


def by_group(
    values: Mapping[str, np.ndarray],
    groups: Sequence[str],
    *,
    min_users: int,
) -> dict[str, Any]:
    """Per group, each metric's mean with a 95 % t interval; per metric the
    largest gap between the means of groups with at least ``min_users``."""
    labels = np.asarray(groups, dtype=object)
    out: dict[str, Any] = {"groups": {}, "gaps": {}}
    for group in sorted(set(labels.tolist())):
        mask = labels == group
        out["groups"][group] = {
            "users": int(mask.sum()),
            **{m: _finite(mean_ci(v[mask])) for m, v in values.items()},
        }
    for metric in values:
        means = {
            g: row[metric]["mean"]
            for g, row in out["groups"].items()
            if row["users"] >= min_users and row[metric]["mean"] is not None
        }
        if len(means) >= 2:
            best, worst = (
                max(means, key=means.__getitem__),
                min(means, key=means.__getitem__),
            )
            out["gaps"][metric] = {
                "gap": means[best] - means[worst],
                "best": best,
                "worst": worst,
            }
        else:
            out["gaps"][metric] = None
    return out


def audit_lists(
    *,
    recommended: np.ndarray,
    histories: Sequence[Sequence[int]],
    item_counts: np.ndarray,
    item_genres: Mapping[int, Sequence[str]],
    accuracy: Mapping[str, np.ndarray],
    user_groups: Mapping[str, Sequence[str]],
    min_group_users: int,
    n_pop_groups: int = 5,
) -> dict[str, Any]:
    """Every measure of one set of top-K lists (one row per user).

    ``recommended`` ``(U, K)`` item indices; ``histories`` each user's items;
    ``accuracy`` per-user metric vectors (e.g. ``ndcg@10``) aligned with the
    rows; ``user_groups`` ``{dimension: [group per row]}``.
    """
    n_items = len(item_counts)
    kl = [
        calibration_kl(h, r, item_genres)
        for h, r in zip(histories, recommended.tolist(), strict=True)
    ]
    kl_values = np.asarray([v for v in kl if v is not None], dtype=np.float64)
    pop = popularity_groups(item_counts, n_pop_groups)
    return {
        "k": int(recommended.shape[1]),
        "users": int(recommended.shape[0]),
        "exposure_gini": exposure_gini(recommended, n_items),
        "coverage": item_coverage(recommended, n_items),
        "long_tail_share": float(
            tail_share(recommended, tail_mask(item_counts)).mean()
        ),
        "calibration_kl": _finite(mean_ci(kl_values)),
        "exposure_by_popularity": {
            "groups": n_pop_groups,
            "order": "least popular first",
            "share": exposure_by_group(recommended, pop, n_pop_groups),
        },
        "accuracy": {m: _finite(mean_ci(v)) for m, v in accuracy.items()},
        "by_group": {
            dimension: by_group(accuracy, labels, min_users=min_group_users)
            for dimension, labels in user_groups.items()
        },
    }


def alerts_for(
    metrics: Mapping[str, Any], thresholds: Mapping[str, float]
) -> list[dict]:
    """The thresholds an audit crosses (empty: none)."""
    found = []

    def add(metric: str, value: float | None, limit: float, above: bool) -> None:
        if value is None:
            return
        if (value > limit) if above else (value < limit):
            word = "above" if above else "below"
            found.append(
                {
                    "metric": metric,
                    "value": value,
                    "threshold": limit,
                    "message": f"{metric} {value:.3f} is {word} {limit:g}",
                }
            )

    add("exposure_gini", metrics.get("exposure_gini"), thresholds["max_gini"], True)
    add("coverage", metrics.get("coverage"), thresholds["min_coverage"], False)
    add(
        "calibration_kl",
        (metrics.get("calibration_kl") or {}).get("mean"),
        thresholds["max_calibration_kl"],
        True,
    )
    for dimension, result in (metrics.get("by_group") or {}).items():
        gap = (result.get("gaps") or {}).get("ndcg@10")
        if gap:
            add(
                f"ndcg@10 gap ({dimension})",
                gap["gap"],
                thresholds["max_ndcg_gap"],
                True,
            )
    return found
