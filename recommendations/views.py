"""Recommendation pages: the signed-in home feed and the movie page's rows.

Both are server-rendered from ``recommendations.selectors``, which never raises on
a serving failure (it serves a database fallback), so these pages do not 500
when artifacts are missing or the engine fails.
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import render

from apex_site.errors import ApplicationError
from recommendations import selectors


def home(request):
    """Anonymous visitors get the landing page; signed-in users their feed.

    The feed is computed from the interaction log on every load, so a rating
    made on a movie page shows in the rows on the next visit.
    """
    rows = (
        selectors.home_rows(user_id=request.user.pk)
        if request.user.is_authenticated
        else []
    )
    return render(request, "home.html", {"rows": rows})


def movie_rows(request, movie_id: int):
    """ "More like this" and "From the same director / collection" as an htmx
    fragment, loaded by the movie page after it renders."""
    try:
        rows = selectors.movie_page_rows(movie_id)
    except ApplicationError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from None
        raise
    return render(
        request,
        "recommendations/includes/movie_rows.html",
        {"rows": rows, "movie_id": movie_id},
    )
