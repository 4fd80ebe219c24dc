"""``/v1/recommendations/*``: a user's feed, similar movies, the knowledge graph.

Authentication as the rest of ``/v1`` (JWT, API key, session). A user reads
their own recommendations only; staff read anybody's. Every response carries
``meta`` (tier, fallback flag and reason, uncertainty gate, scorer, artifact
version, timings), and a serving failure is a 200 with ``meta.fallback`` true,
never a 500 (see ``recommendations/serving/policy.py``).
"""

from __future__ import annotations

import math
import time

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as accounts_selectors
from apex_site.errors import ApplicationError, ErrorCode, ErrorSerializer
from apex_site.responses import json_response
from apex_site.timing import TimedApiView, stage
from catalog import selectors as catalog_selectors
from recommendations import selectors, services


# ------------------------------------------------------------------ input
class RecommendationParamsSerializer(serializers.Serializer):
    n = serializers.IntegerField(
        min_value=1, max_value=100, default=selectors.DEFAULT_N, help_text="List length"
    )
    diversity = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        default=None,
        allow_null=True,
        help_text="MMR diversity, 0 = pure relevance, 1 = most diverse "
        "(default: the engine's configured value)",
    )
    exclude_seen = serializers.BooleanField(
        default=True, help_text="Leave out movies in the user's history"
    )
    explain = serializers.BooleanField(
        default=True, help_text="Add a human-readable `reason` per item"
    )

    def validate_diversity(self, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise serializers.ValidationError("A number from 0 to 1.")
        return value


class SimilarParamsSerializer(RecommendationParamsSerializer):
    exclude_seen = None  # not meaningful for a movie's neighbours


class KnowledgeGraphParamsSerializer(serializers.Serializer):
    n = serializers.IntegerField(
        min_value=1,
        max_value=100,
        default=selectors.DEFAULT_N,
        help_text="Per relation",
    )


def _params(serializer_class, request) -> dict:
    params = serializer_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    return params.validated_data


# ------------------------------------------------------------------ output
class FeedMetaSerializer(serializers.Serializer):
    tier = serializers.IntegerField(allow_null=True, help_text="1, 2 or 3")
    tier_name = serializers.CharField(allow_null=True)
    fallback = serializers.BooleanField(
        help_text="Not the engine's ensemble ranking: a content/popularity fallback"
    )
    fallback_reason = serializers.CharField(
        allow_null=True,
        help_text="Why the database fallback served: `serving_unavailable`, "
        "`no_engine`, `engine_error`, `unknown_item`",
    )
    gate_fired = serializers.BooleanField(
        help_text="The ensemble's members disagreed; content ranking served"
    )
    scorer = serializers.CharField()
    artifact_version = serializers.CharField(allow_null=True)
    cached = serializers.BooleanField(
        help_text="The engine's answer for this exact history and parameters "
        "came from the serving process's result cache (same artifact version "
        "and weights)"
    )
    policy = serializers.ChoiceField(
        choices=["greedy", "epsilon_greedy", "thompson"],
        help_text="How the list was chosen: `greedy` (the ranking), or an "
        "exploring policy of the user's experiment variant",
    )
    weights_version = serializers.IntegerField(
        allow_null=True,
        help_text="The ensemble weights version of the user's experiment "
        "variant; null: the active version",
    )
    timings_ms = serializers.DictField(
        child=serializers.FloatField(),
        help_text="`engine`: time inside the serving engine; its stages; "
        "`cache`: a cache hit instead; `history`, `hydrate`: database time",
    )


@extend_schema_serializer(component_name="RecommendedMovie")
class RecommendedItemSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="movie.pk")
    title = serializers.CharField(source="movie.title")
    year = serializers.IntegerField(source="movie.year", allow_null=True)
    genres = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    score = serializers.FloatField(allow_null=True)
    reason = serializers.CharField(
        allow_null=True, required=False, help_text="Present when `explain` is true"
    )

    def get_genres(self, item) -> list[str]:
        return item.movie.genre_names

    def get_poster_url(self, item) -> str:
        url = catalog_selectors.poster_url(item.movie)
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def to_representation(self, item):
        data = super().to_representation(item)
        if not self.context.get("explain", True):
            data.pop("reason", None)
        return data


class CastMemberSerializer(serializers.Serializer):
    name = serializers.CharField(source="person.name")
    character = serializers.CharField()


@extend_schema_serializer(component_name="EnrichedRecommendedMovie")
class EnrichedItemSerializer(RecommendedItemSerializer):
    overview = serializers.CharField(source="movie.overview")
    collection = serializers.CharField(
        source="movie.collection.name", allow_null=True, default=None
    )
    directors = serializers.SerializerMethodField()
    cast = serializers.SerializerMethodField()
    trailer_key = serializers.SerializerMethodField()
    trailer_url = serializers.SerializerMethodField()
    vote_average = serializers.FloatField(source="movie.vote_average", allow_null=True)
    imdb_id = serializers.CharField(source="movie.imdb_id")
    tmdb_id = serializers.IntegerField(source="movie.tmdb_id", allow_null=True)

    def get_directors(self, item) -> list[str]:
        return catalog_selectors.movie_directors(item.movie)

    @extend_schema_field(CastMemberSerializer(many=True))
    def get_cast(self, item) -> list[dict[str, str]]:
        return [
            {"name": c.person.name, "character": c.character}
            for c in item.movie.credits.all()
            if c.role == "cast"
        ][:10]

    def get_trailer_key(self, item) -> str | None:
        return item.movie.trailer_key or None

    def get_trailer_url(self, item) -> str | None:
        key = item.movie.trailer_key
        return f"https://www.youtube.com/watch?v={key}" if key else None


_REQUEST_ID_HELP = (
    "Id of this served list: send it as `request_id` with the events (clicks, "
    "ratings) it leads to"
)


class UserRecommendationsSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    request_id = serializers.CharField(help_text=_REQUEST_ID_HELP)
    items = RecommendedItemSerializer(many=True)
    meta = FeedMetaSerializer()


class SimilarMoviesSerializer(serializers.Serializer):
    movie_id = serializers.IntegerField()
    request_id = serializers.CharField(help_text=_REQUEST_ID_HELP)
    items = RecommendedItemSerializer(many=True)
    meta = FeedMetaSerializer()


class EnrichedSimilarMoviesSerializer(serializers.Serializer):
    movie_id = serializers.IntegerField()
    request_id = serializers.CharField(help_text=_REQUEST_ID_HELP)
    items = EnrichedItemSerializer(many=True)
    meta = FeedMetaSerializer()


# ------------------------------------------------------------------ plain JSON
# The hot endpoint renders with these instead of the serializers above (which
# stay the schema): the same JSON at a fraction of the cost (issue 17; a test
# holds the two equal).
def items_json(items, request, *, explain: bool) -> list[dict]:
    base = None
    out = []
    for item in items:
        movie = item.movie
        poster = catalog_selectors.poster_url(movie)
        if poster.startswith("/"):
            if base is None:
                base = request.build_absolute_uri("/")[:-1]
            poster = base + poster
        entry = {
            "id": movie.pk,
            "title": movie.title,
            "year": movie.year,
            "genres": movie.genre_names,
            "poster_url": poster,
            "score": None if item.score is None else float(item.score),
        }
        if explain:
            entry["reason"] = item.reason
        out.append(entry)
    return out


def meta_json(meta) -> dict:
    return {
        "tier": meta.tier,
        "tier_name": meta.tier_name,
        "fallback": meta.fallback,
        "fallback_reason": meta.fallback_reason,
        "gate_fired": meta.gate_fired,
        "scorer": meta.scorer,
        "artifact_version": meta.artifact_version,
        "cached": meta.cached,
        "policy": meta.policy,
        "weights_version": meta.weights_version,
        "timings_ms": {k: float(v) for k, v in meta.timings_ms.items()},
    }


class MovieRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    title = serializers.CharField()
    year = serializers.IntegerField(allow_null=True)


class RelationsSerializer(serializers.Serializer):
    director = MovieRefSerializer(many=True, default=list)
    collection = MovieRefSerializer(many=True, default=list)
    cast = MovieRefSerializer(many=True, default=list)
    genres = MovieRefSerializer(many=True, default=list)


class KnowledgeGraphSerializer(serializers.Serializer):
    movie = MovieRefSerializer()
    relations = RelationsSerializer()
    meta = FeedMetaSerializer()


# ------------------------------------------------------------------ examples
_META = {
    "tier": 2,
    "tier_name": "onnx",
    "fallback": False,
    "fallback_reason": None,
    "gate_fired": False,
    "scorer": "ensemble",
    "artifact_version": "20261127T021652Z",
    "cached": False,
    "policy": "greedy",
    "weights_version": None,
    "timings_ms": {
        "retrieval": 1.9,
        "ranking": 2.4,
        "reranking": 0.6,
        "engine": 5.1,
        "history": 0.8,
        "hydrate": 1.2,
    },
}
_ITEM = {
    "id": 50,
    "title": "Star Wars",
    "year": 1977,
    "genres": ["Action", "Adventure", "Sci-Fi"],
    "poster_url": "https://image.tmdb.org/t/p/w342/6FfCtAuVAW8XJjZ7eWeLibRLWTw.jpg",
    "score": 0.913,
    "reason": "Because you watched The Empire Strikes Back",
}
_FALLBACK_META = {
    **_META,
    "fallback": True,
    "fallback_reason": "serving_unavailable",
    "scorer": "database",
    "tier": None,
    "tier_name": None,
    "artifact_version": None,
    "timings_ms": {"fallback": 3.2, "history": 0.8, "hydrate": 1.1},
}
# The parameters as the views validate them: bounds, defaults and types come
# from the serializers, so a schema-valid request is a valid one (issue 18).
_PARAMS = [RecommendationParamsSerializer]
_BAD_PARAMS = OpenApiResponse(
    ErrorSerializer,
    description="`invalid`: a parameter is out of range; `detail` names it",
    examples=[
        OpenApiExample(
            "n out of range",
            value={
                "code": "invalid",
                "message": "The request is invalid.",
                "detail": {"n": ["Ensure this value is less than or equal to 100."]},
            },
            status_codes=["400"],
        )
    ],
)


# ------------------------------------------------------------------ views
class UserRecommendationsApi(TimedApiView):
    """A user's recommendations from their current history."""

    @extend_schema(
        summary="Recommendations for a user",
        description="Your own id, or any id with a staff account. Reads the "
        "user's current history from the interaction log, so a new rating "
        "changes the next response. On a serving failure the list comes from "
        "a popularity/content fallback and `meta.fallback` is true.",
        tags=["recommendations"],
        parameters=_PARAMS,
        responses={
            200: UserRecommendationsSerializer,
            400: _BAD_PARAMS,
            401: ErrorSerializer,
            403: OpenApiResponse(
                ErrorSerializer,
                description="`permission_denied`: another user's recommendations",
            ),
            404: OpenApiResponse(ErrorSerializer, description="No such user"),
        },
        examples=[
            OpenApiExample(
                "Served by the ensemble",
                value={"user_id": 7, "items": [_ITEM], "meta": _META},
                response_only=True,
            ),
            OpenApiExample(
                "Artifacts missing: fallback",
                value={
                    "user_id": 7,
                    "items": [
                        {
                            **_ITEM,
                            "score": None,
                            "reason": "Popular in genres you watch",
                        }
                    ],
                    "meta": _FALLBACK_META,
                },
                response_only=True,
            ),  # fmt: skip
        ],
    )
    def get(self, request, user_id: int):
        if user_id != request.user.pk and not request.user.is_staff:
            raise exceptions.PermissionDenied(
                "You can read your own recommendations only."
            )
        params = _params(RecommendationParamsSerializer, request)
        if user_id != request.user.pk and not accounts_selectors.user_exists(
            user_id=user_id
        ):
            raise ApplicationError(
                "No such user.", code=ErrorCode.NOT_FOUND, status_code=404
            )
        result = services.user_feed(
            user_id=user_id, surface="api:recommendations", **params
        )
        request_id = result.request_id
        stage(request, "impression", result.meta.timings_ms.get("experiment", 0.0))
        started = time.perf_counter()
        timings = result.meta.timings_ms
        stage(request, "history", timings.get("history", 0.0))
        stage(request, "engine", timings.get("engine", timings.get("cache", 0.0)))
        stage(request, "hydrate", timings.get("hydrate", 0.0))
        response = json_response(
            {
                "user_id": user_id,
                "request_id": request_id,
                "items": items_json(result.items, request, explain=params["explain"]),
                "meta": meta_json(result.meta),
            }
        )
        stage(request, "render", 1e3 * (time.perf_counter() - started))
        return response


_SIMILAR_PARAMS = [SimilarParamsSerializer]
_SIMILAR_404 = OpenApiResponse(ErrorSerializer, description="No such movie")


class SimilarMoviesApi(APIView):
    """Movies similar to one movie."""

    enriched = False
    output = SimilarMoviesSerializer

    @extend_schema(
        summary="Movies similar to a movie",
        tags=["recommendations"],
        parameters=_SIMILAR_PARAMS,
        responses={
            200: SimilarMoviesSerializer,
            400: _BAD_PARAMS,
            401: ErrorSerializer,
            404: _SIMILAR_404,
        },
        examples=[
            OpenApiExample(
                "Similar",
                value={
                    "movie_id": 172,
                    "request_id": "5f0c6f3e0c1b4a7f9d2e8b6a1c3d4e5f",
                    "items": [{**_ITEM, "reason": "From the Star Wars collection"}],
                    "meta": _META,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, movie_id: int):
        params = _params(SimilarParamsSerializer, request)
        result = services.slate_log(
            result=selectors.similar_movies(movie_id, **params, enriched=self.enriched),
            user_id=request.user.pk,
            surface="api:similar",
        )
        body = {
            "movie_id": movie_id,
            "request_id": result.request_id,
            "items": result.items,
            "meta": result.meta,
        }
        context = {"request": request, "explain": params["explain"]}
        return Response(self.output(body, context=context).data)


class EnrichedSimilarMoviesApi(SimilarMoviesApi):
    """Similar movies with poster, cast, directors and trailer."""

    enriched = True
    output = EnrichedSimilarMoviesSerializer

    @extend_schema(
        summary="Similar movies with poster, cast and trailer",
        tags=["recommendations"],
        parameters=_SIMILAR_PARAMS,
        responses={
            200: EnrichedSimilarMoviesSerializer,
            400: _BAD_PARAMS,
            401: ErrorSerializer,
            404: _SIMILAR_404,
        },
        examples=[
            OpenApiExample(
                "Enriched",
                value={
                    "movie_id": 172,
                    "request_id": "5f0c6f3e0c1b4a7f9d2e8b6a1c3d4e5f",
                    "items": [
                        {
                            **_ITEM,
                            "overview": "Princess Leia is captured and held "
                            "hostage by the evil Imperial forces…",
                            "collection": "Star Wars Collection",
                            "directors": ["George Lucas"],
                            "cast": [
                                {"name": "Mark Hamill", "character": "Luke Skywalker"}
                            ],
                            "trailer_key": "vZ734NWnAHA",
                            "trailer_url": "https://www.youtube.com/watch?v=vZ734NWnAHA",
                            "vote_average": 8.1,
                            "imdb_id": "tt0076759",
                            "tmdb_id": 11,
                        }
                    ],
                    "meta": _META,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, movie_id: int):
        return super().get(request, movie_id)


class KnowledgeGraphApi(APIView):
    """Catalog neighbours: same director, collection, lead cast, genres."""

    @extend_schema(
        summary="Knowledge-graph neighbours of a movie",
        tags=["recommendations"],
        parameters=[KnowledgeGraphParamsSerializer],
        responses={
            200: KnowledgeGraphSerializer,
            400: _BAD_PARAMS,
            401: ErrorSerializer,
            404: _SIMILAR_404,
        },
        examples=[
            OpenApiExample(
                "Neighbours",
                value={
                    "movie": {
                        "id": 172,
                        "title": "Empire Strikes Back, The",
                        "year": 1980,
                    },
                    "relations": {
                        "director": [],
                        "collection": [
                            {"id": 50, "title": "Star Wars", "year": 1977},
                            {"id": 181, "title": "Return of the Jedi", "year": 1983},
                        ],
                        "cast": [{"id": 50, "title": "Star Wars", "year": 1977}],
                        "genres": [{"id": 50, "title": "Star Wars", "year": 1977}],
                    },
                    "meta": {
                        **_META,
                        "scorer": "knowledge_graph",
                        "timings_ms": {"engine": 0.4},
                    },
                },
                response_only=True,
            )  # fmt: skip
        ],
    )
    def get(self, request, movie_id: int):
        params = _params(KnowledgeGraphParamsSerializer, request)
        graph = selectors.knowledge_graph(movie_id, n=params["n"])
        relations = {
            key: graph.relations.get(key, []) for key in selectors.RELATION_TITLES
        }
        body = {"movie": graph.movie, "relations": relations, "meta": graph.meta}
        return Response(KnowledgeGraphSerializer(body).data)
