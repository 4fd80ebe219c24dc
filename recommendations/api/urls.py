from django.urls import path

from .admin import ReloadEnsembleWeightsApi
from .artifacts import ArtifactsHealthApi, ArtifactsReloadApi
from .recommendations import (
    EnrichedSimilarMoviesApi,
    KnowledgeGraphApi,
    SimilarMoviesApi,
    UserRecommendationsApi,
)

urlpatterns = [
    path("artifacts/health", ArtifactsHealthApi.as_view(), name="artifacts-health"),
    path("artifacts/reload", ArtifactsReloadApi.as_view(), name="artifacts-reload"),
    path(
        "recommendations/user/<int:user_id>",
        UserRecommendationsApi.as_view(),
        name="recommendations-user",
    ),
    path(
        "recommendations/id/<int:movie_id>",
        SimilarMoviesApi.as_view(),
        name="recommendations-similar",
    ),
    path(
        "recommendations/id/<int:movie_id>/enriched",
        EnrichedSimilarMoviesApi.as_view(),
        name="recommendations-similar-enriched",
    ),
    path(
        "recommendations/knowledge-graph/<int:movie_id>",
        KnowledgeGraphApi.as_view(),
        name="recommendations-knowledge-graph",
    ),
    path(
        "admin/reload-ensemble-weights",
        ReloadEnsembleWeightsApi.as_view(),
        name="admin-reload-ensemble-weights",
    ),
]
