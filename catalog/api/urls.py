from django.urls import path

from catalog.api.views import (
    MovieDetailApi,
    MovieListApi,
    MovieSearchApi,
    MovieSemanticSearchApi,
)

urlpatterns = [
    path("catalog/movies", MovieListApi.as_view(), name="catalog-movies"),
    path(
        "catalog/movies/<int:movie_id>",
        MovieDetailApi.as_view(),
        name="catalog-movie-detail",
    ),
    path("search", MovieSearchApi.as_view(), name="search"),
    path("search/ai", MovieSemanticSearchApi.as_view(), name="search-ai"),
]
