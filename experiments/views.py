"""Staff pages: the experiments and each one's results."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from experiments import selectors


@staff_member_required
def experiment_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "experiments/list.html", {"experiments": selectors.experiments_all()}
    )


@staff_member_required
def experiment_results(request: HttpRequest, key: str) -> HttpResponse:
    experiment = selectors.experiment_by_key(key=key)
    if experiment is None:
        raise Http404("no such experiment")
    return render(
        request,
        "experiments/results.html",
        selectors.experiment_results(experiment=experiment),
    )
