from django.urls import path

from recommendations import views

app_name = "recommendations"

urlpatterns = [
    path(
        "recommendations/movies/<int:movie_id>/rows/",
        views.movie_rows,
        name="movie_rows",
    ),
]
