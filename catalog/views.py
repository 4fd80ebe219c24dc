"""Catalog pages: browse, movie detail (rate, watchlist), search."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from apex_site.errors import ApplicationError, ErrorCode
from catalog import selectors, services
from catalog.forms import BrowseForm, RateForm, SearchForm, WatchlistForm
from catalog.models import Movie
from catalog.poster import poster_svg
from learning import selectors as learning_selectors

PAGE_SIZE = 24
SEARCH_LIMIT = 20


def browse(request):
    form = BrowseForm(request.GET or None)
    filters: dict = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "genre": data["genre"] or None,
            "decade": int(data["decade"]) if data["decade"] else None,
            "ordering": data["ordering"] or "popularity",
        }
    movies = selectors.movie_list(**filters)
    page = Paginator(movies, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "catalog/browse.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )


def movie_detail(request, movie_id: int):
    try:
        movie = selectors.movie_detail(movie_id=movie_id)
    except ApplicationError:
        raise Http404("No such movie.") from None
    distribution = learning_selectors.rating_distribution(movie_id=movie.pk)
    peak = max(distribution.values(), default=0)
    context = {
        "movie": movie,
        "poster_url": selectors.poster_url(movie),
        "directors": selectors.movie_directors(movie),
        "cast": selectors.movie_cast(movie),
        "distribution": [
            (stars, count, round(100 * count / peak) if peak else 0)
            for stars, count in distribution.items()
        ],
    }
    if request.user.is_authenticated:
        if "rid" in request.GET:  # opened from a served list: a click
            services.movie_open(
                user=request.user, movie_id=movie.pk, request_id=request.GET["rid"]
            )
        mine = learning_selectors.user_rating(
            user_id=request.user.pk, movie_id=movie.pk
        )
        on_list = learning_selectors.user_has_on_watchlist(
            user_id=request.user.pk, movie_id=movie.pk
        )
        context.update(
            my_rating=mine,
            rate_form=RateForm(initial={"stars": f"{mine:g}" if mine else None}),
            on_watchlist=on_list,
            watchlist_form=WatchlistForm(initial={"on": not on_list}),
        )
    return render(request, "catalog/movie_detail.html", context)


@cache_control(public=True, max_age=86400)
def poster(request, movie_id: int):
    movie = Movie.objects.filter(pk=movie_id).prefetch_related("genres").first()
    if movie is None:
        raise Http404("No such movie.")
    svg = poster_svg(movie.title, movie.year, [g.name for g in movie.genres.all()])
    return HttpResponse(svg, content_type="image/svg+xml")


@login_required
@require_POST
def movie_rate(request, movie_id: int):
    form = RateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a rating from 0.5 to 5 stars.")
        return redirect("catalog:movie", movie_id=movie_id)
    try:
        services.movie_rate(
            user=request.user,
            movie_id=movie_id,
            stars=form.cleaned_data["stars"],
            idempotency_key=f"web:{request.user.pk}:"
            f"{form.cleaned_data['idempotency_key']}",
        )
    except ApplicationError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Rated {form.cleaned_data['stars']:g} ★.")
    return redirect("catalog:movie", movie_id=movie_id)


@login_required
@require_POST
def movie_watchlist(request, movie_id: int):
    form = WatchlistForm(request.POST)
    if not form.is_valid():
        return redirect("catalog:movie", movie_id=movie_id)
    on = form.cleaned_data["on"]
    try:
        services.movie_watchlist_set(
            user=request.user,
            movie_id=movie_id,
            on=on,
            idempotency_key=f"web:{request.user.pk}:"
            f"{form.cleaned_data['idempotency_key']}",
        )
    except ApplicationError as exc:
        raise Http404(exc.message) from None
    on_list = learning_selectors.user_has_on_watchlist(
        user_id=request.user.pk, movie_id=movie_id
    )
    if request.headers.get("HX-Request"):
        return render(
            request,
            "catalog/includes/watchlist_button.html",
            {
                "movie_id": movie_id,
                "on_watchlist": on_list,
                "watchlist_form": WatchlistForm(initial={"on": not on_list}),
            },
        )
    messages.success(
        request, "Added to your watchlist." if on_list else "Removed from watchlist."
    )
    return redirect("catalog:movie", movie_id=movie_id)


def _search(form: SearchForm) -> tuple[list, str | None]:
    if not form.is_valid() or not form.cleaned_data["q"].strip():
        return [], None
    q = form.cleaned_data["q"]
    try:
        if form.cleaned_data["mode"] == "semantic":
            return selectors.movie_semantic_search(q=q, limit=SEARCH_LIMIT), None
        return selectors.movie_search(q=q, limit=SEARCH_LIMIT), None
    except ApplicationError as exc:  # e.g. the semantic index is not built
        return [], exc.message


def search(request):
    form = SearchForm(request.GET or None, initial={"mode": "keyword"})
    hits, error = _search(form)
    return render(
        request,
        "catalog/search.html",
        {
            "form": form,
            "hits": hits,
            "error": error,
            "searched": bool(request.GET.get("q")),
        },
    )


def search_results(request):
    """The results fragment htmx swaps in while the user types."""
    form = SearchForm(request.GET or None)
    hits, error = _search(form)
    return render(
        request,
        "catalog/includes/search_results.html",
        {"hits": hits, "error": error, "searched": bool(request.GET.get("q"))},
    )
