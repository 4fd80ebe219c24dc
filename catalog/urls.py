from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("catalog/", views.browse, name="browse"),
    path("catalog/movies/<int:movie_id>/", views.movie_detail, name="movie"),
    path("catalog/movies/<int:movie_id>/poster.svg", views.poster, name="poster"),
    path("catalog/movies/<int:movie_id>/rate/", views.movie_rate, name="rate"),
    path(
        "catalog/movies/<int:movie_id>/watchlist/",
        views.movie_watchlist,
        name="watchlist",
    ),
    path("search/", views.search, name="search"),
    path("search/results/", views.search_results, name="search_results"),
]
