"""Recommendation pages: the signed-in home feed and the movie page's rows.

Both are server-rendered from ``recommendations.selectors``, which never raises on
a serving failure (it serves a database fallback), so these pages do not 500
when artifacts are missing or the engine fails.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from apex_site.errors import ApplicationError
from recommendations import services


def home(request):
    """Anonymous visitors get the landing page; signed-in users their feed.

    The feed is computed from the interaction log on every load, so a rating
    made on a movie page shows in the rows on the next visit. Each row is
    logged as a slate; its links carry the slate's request id (``?rid=``),
    so opening a movie from a row is a click joined to that slate.
    """
    rows = (
        services.home_rows_logged(user_id=request.user.pk)
        if request.user.is_authenticated
        else []
    )
    return render(request, "home.html", {"rows": rows})


def movie_rows(request, movie_id: int):
    """ "More like this" and "From the same director / collection" as an htmx
    fragment, loaded by the movie page after it renders."""
    try:
        rows = services.movie_rows_logged(
            movie_id=movie_id,
            user_id=request.user.pk if request.user.is_authenticated else None,
        )
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from None
        raise
    return render(
        request,
        "recommendations/includes/movie_rows.html",
        {"rows": rows, "movie_id": movie_id},
    )
