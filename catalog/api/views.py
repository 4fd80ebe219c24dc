"""Catalog API: movie lists, details, keyword and semantic search.

Catalog reads are public (``AllowAny``): movie metadata is not personal, the
pages show it to signed-out visitors too, and API consumers can browse before
they have a key. Throttling (per plan for signed-in callers, the anonymous
rate otherwise) still applies.
"""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apex_site.errors import ErrorSerializer
from apex_site.openapi import PAGE_PARAMETERS, paginated
from apex_site.pagination import StandardPagination
from catalog import selectors
from learning import selectors as learning_selectors


@extend_schema_serializer(component_name="MovieSummary")
class MovieSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    year = serializers.IntegerField(allow_null=True)
    genres = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    rating_mean = serializers.FloatField(allow_null=True)
    rating_count = serializers.IntegerField()
    tmdb_id = serializers.IntegerField(allow_null=True)
    movielens_id = serializers.IntegerField(allow_null=True)

    def get_genres(self, movie) -> list[str]:
        return movie.genre_names

    def get_poster_url(self, movie) -> str:
        url = selectors.poster_url(movie)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class MovieListApi(APIView):
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        genre = serializers.SlugField(
            required=False, help_text="Genre slug, e.g. sci-fi"
        )
        decade = serializers.IntegerField(
            required=False, min_value=1800, max_value=2100, help_text="e.g. 1990"
        )
        ordering = serializers.ChoiceField(
            choices=selectors.ORDERINGS, required=False, default="popularity"
        )

    OutputSerializer = MovieSummarySerializer

    @extend_schema(
        summary="List movies",
        operation_id="v1_catalog_movies_list",
        tags=["catalog"],
        parameters=[
            InputSerializer,
            OpenApiParameter(
                "decade",
                {"type": "integer", "minimum": 1800, "maximum": 2100, "multipleOf": 10},
                description="A year ending in 0, e.g. 1990",
            ),
            *PAGE_PARAMETERS,
        ],
        responses={
            200: paginated("PaginatedMovieSummaryList", OutputSerializer(many=True)),
            400: ErrorSerializer,
        },
    )
    def get(self, request):
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        movies = selectors.movie_list(**params.validated_data)
        paginator = StandardPagination()
        page = paginator.paginate_queryset(movies, request, view=self)
        data = self.OutputSerializer(page, many=True, context={"request": request}).data
        return paginator.get_paginated_response(data)


class MovieDetailApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="MovieDetail")
    class OutputSerializer(MovieSummarySerializer):
        original_title = serializers.CharField()
        release_date = serializers.DateField(allow_null=True)
        overview = serializers.CharField()
        tagline = serializers.CharField()
        runtime = serializers.IntegerField(allow_null=True)
        imdb_id = serializers.CharField()
        vote_average = serializers.FloatField(allow_null=True)
        vote_count = serializers.IntegerField(allow_null=True)
        trailer_key = serializers.CharField()
        collection = serializers.CharField(source="collection.name", allow_null=True)
        directors = serializers.SerializerMethodField()
        cast = serializers.SerializerMethodField()
        keywords = serializers.SerializerMethodField()
        rating_distribution = serializers.SerializerMethodField()

        def get_directors(self, movie) -> list[str]:
            return selectors.movie_directors(movie)

        def get_cast(self, movie) -> list[str]:
            return selectors.movie_cast(movie)

        def get_keywords(self, movie) -> list[str]:
            return [k.name for k in movie.keywords.all()]

        def get_rating_distribution(self, movie) -> dict[str, int]:
            counts = learning_selectors.rating_distribution(movie_id=movie.pk)
            return {f"{stars:g}": n for stars, n in counts.items()}

    @extend_schema(
        summary="One movie with credits, keywords and its rating distribution",
        tags=["catalog"],
        responses={200: OutputSerializer, 404: ErrorSerializer},
    )
    def get(self, request, movie_id: int):
        movie = selectors.movie_detail(movie_id=movie_id)
        return Response(self.OutputSerializer(movie, context={"request": request}).data)


class SearchInputSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=200, trim_whitespace=True)
    limit = serializers.IntegerField(min_value=1, max_value=50, default=20)


class SearchHitSerializer(serializers.Serializer):
    score = serializers.FloatField()
    movie = MovieSummarySerializer()


class SearchResultSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.CharField()
    results = SearchHitSerializer(many=True)


class MovieSearchApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Keyword search (full text with prefix matching, ranked)",
        tags=["search"],
        parameters=[SearchInputSerializer],
        responses={200: SearchResultSerializer, 400: ErrorSerializer},
    )
    def get(self, request):
        params = SearchInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        hits = selectors.movie_search(**params.validated_data)
        return _search_response(request, params.validated_data["q"], "keyword", hits)


class MovieSemanticSearchApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Semantic search (sentence embeddings, plain-language queries)",
        tags=["search"],
        parameters=[SearchInputSerializer],
        responses={
            200: SearchResultSerializer,
            400: ErrorSerializer,
            503: OpenApiResponse(
                ErrorSerializer,
                description="`search_index_unavailable`: the index was not built.",
            ),
        },
    )
    def get(self, request):
        params = SearchInputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        hits = selectors.movie_semantic_search(**params.validated_data)
        return _search_response(request, params.validated_data["q"], "semantic", hits)


def _search_response(request, q: str, mode: str, hits) -> Response:
    data = SearchResultSerializer(
        {"query": q, "mode": mode, "results": hits}, context={"request": request}
    ).data
    return Response(data)
