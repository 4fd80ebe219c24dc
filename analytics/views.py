"""``/metrics`` (Prometheus) and the staff dashboards (server-side SVG charts)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import render

from analytics import charts, jobs, selectors, slo
from analytics.audits import thresholds
from learning import selectors as learning_selectors
from recommendations import selectors as rec_selectors

LOOPBACK = {"127.0.0.1", "::1"}


def _local(request: HttpRequest) -> bool:
    """A request from this machine that no proxy relayed."""
    return (
        request.META.get("REMOTE_ADDR") in LOOPBACK
        and "HTTP_X_FORWARDED_FOR" not in request.META
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition: staff, or loopback (a scraper on the host)."""
    if not (
        _local(request) or (request.user.is_authenticated and request.user.is_staff)
    ):
        return HttpResponseForbidden("metrics: staff or loopback only\n")
    import os

    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


PAGES = (
    ("fairness", "Fairness"),
    ("slo", "Latency SLOs"),
    ("privacy", "Privacy budget"),
    ("models", "Models"),
    ("operations", "Jobs and learner"),
)


def _page(request: HttpRequest, name: str, context: dict) -> HttpResponse:
    return render(
        request,
        f"analytics/{name}.html",
        {"pages": PAGES, "current": name, **context},
    )


@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    latest = selectors.audit_latest()
    return _page(
        request,
        "index",
        {"latest_audit": latest, "budget": selectors.budget_current()},
    )


@staff_member_required
def fairness(request: HttpRequest) -> HttpResponse:
    audits = list(reversed(selectors.audit_list(limit=30)))
    for audit in audits:
        audit.ndcg10 = (audit.metrics.get("accuracy", {}).get("ndcg@10") or {}).get(
            "mean"
        )
    labels = [a.created_at.strftime("%m-%d %H:%M") for a in audits]
    limits = thresholds()
    latest = audits[-1] if audits else None
    over_time = charts.line_chart(
        {
            "exposure Gini": [a.metrics.get("exposure_gini") for a in audits],
            "coverage": [a.metrics.get("coverage") for a in audits],
            "long-tail share": [a.metrics.get("long_tail_share") for a in audits],
        },
        labels,
        title="Exposure over time (top-10 lists)",
    )
    gap_series = {
        f"NDCG@10 gap: {d}": [
            (
                (a.metrics.get("by_group", {}).get(d, {}).get("gaps") or {}).get(
                    "ndcg@10"
                )
                or {}
            ).get("gap")
            for a in audits
        ]
        for d in selectors.DIMENSIONS
    }
    gaps = charts.line_chart(
        gap_series, labels, title="Largest NDCG@10 gap between groups",
        threshold=limits["max_ndcg_gap"],
    )  # fmt: skip
    group_charts = []
    exposure = None
    if latest:
        for dimension, result in latest.metrics.get("by_group", {}).items():
            rows = [
                (f"{group} (n={row['users']})", row["ndcg@10"]["mean"] or 0.0, None)
                for group, row in result["groups"].items()
            ]
            group_charts.append(
                charts.bar_chart(rows, title=f"NDCG@10 by {dimension} (latest audit)")
            )
        share = latest.metrics["exposure_by_popularity"]["share"]
        names = ["least popular"] + ["middle"] * (len(share) - 2) + ["most popular"]
        exposure = charts.bar_chart(
            [(f"group {i + 1} ({names[i]})", s, 1 / len(share))
             for i, s in enumerate(share)],
            title="Share of slots by popularity (tick: equal share)",
            flag_over=False,
        )  # fmt: skip
    return _page(
        request,
        "fairness",
        {
            "audits": audits[::-1],
            "latest": latest,
            "over_time": over_time,
            "gaps": gaps,
            "group_charts": group_charts,
            "exposure": exposure,
            "thresholds": limits,
        },
    )


@staff_member_required
def slo_page(request: HttpRequest) -> HttpResponse:
    report = slo.report()
    window_charts = []
    for window in slo.WINDOWS:
        rows = [
            (r["route"], r["windows"][window]["p95_ms"] or 0.0, r["targets"]["p95_ms"])
            for r in report["routes"]
            if r["windows"][window]
        ]
        window_charts.append(
            charts.bar_chart(rows, title=f"p95 latency per route, last {window} "
                             "(tick = target)", unit=" ms")
        )  # fmt: skip
    return _page(request, "slo", {"report": report, "window_charts": window_charts})


@staff_member_required
def privacy(request: HttpRequest) -> HttpResponse:
    budgets = selectors.budget_list()
    chart = charts.bar_chart(
        [
            (f"{b.dataset} {b.period} spent", b.epsilon_spent, b.epsilon_cap)
            for b in budgets
        ],
        title="Epsilon spent per month (tick = cap)",
    )
    releases = selectors.release_list()
    latest = next((r for r in releases if r.query["release"] == "genre_counts"), None)
    counts_chart = None
    if latest is not None:
        counts_chart = charts.bar_chart(
            [
                (g["group"], float(max(sum(g["counts"].values()), 0)), None)
                for g in latest.result["groups"]
            ],
            title=f"Noisy interactions per {latest.query['dimension']} "
            f"(epsilon {latest.epsilon:g}, the API's numbers)",
        )
    return _page(
        request,
        "privacy",
        {
            "budgets": budgets,
            "chart": chart,
            "counts_chart": counts_chart,
            "releases": releases,
        },
    )


@staff_member_required
def models(request: HttpRequest) -> HttpResponse:
    weights = rec_selectors.ensemble_weights_history()
    artifacts = rec_selectors.artifact_versions(limit=5)
    for artifact in artifacts:
        artifact["ndcg10"] = artifact["metrics"].get("ndcg@10")
    chronological = weights[::-1]
    estimates = charts.line_chart(
        {"estimated value": [w.estimated_value for w in chronological]},
        [f"v{w.version}" for w in chronological],
        title="Ensemble weight versions: estimated value (DR)",
    )
    evaluation = selectors.offline_evaluation_latest()
    eval_chart = None
    if evaluation:
        eval_chart = charts.bar_chart(
            [(name, (row.get("ndcg@10") or {}).get("mean") or 0.0, None)
             for name, row in evaluation.results.items()],
            title=f"NDCG@10 on held-out users, {evaluation.artifact_version}",
        )  # fmt: skip
    return _page(
        request,
        "models",
        {
            "weights": weights,
            "artifacts": artifacts,
            "estimates": estimates,
            "evaluation": evaluation,
            "eval_chart": eval_chart,
            "serving": rec_selectors.serving_status(),
        },
    )


@staff_member_required
def operations(request: HttpRequest) -> HttpResponse:
    rows = jobs.job_list()
    for row in rows:
        row["started_at"] = datetime.fromtimestamp(row["started"], UTC)
    chart = charts.bar_chart(
        [(r["name"], r["seconds"], None) for r in rows],
        title="Last run duration per background job",
        unit=" s",
    )
    return _page(
        request,
        "operations",
        {
            "jobs": rows,
            "chart": chart,
            "backlog": learning_selectors.event_stream_backlog(),
        },
    )
