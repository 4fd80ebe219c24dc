"""Analytics API: private interaction analytics, offline metrics, SLOs."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors, services, slo
from analytics.errors import AnalyticsErrorCode as Code
from apex_site.errors import ApplicationError, ErrorSerializer
from recommendations import selectors as rec_selectors

_401 = OpenApiResponse(ErrorSerializer, description="`not_authenticated`")


def _require_analytics(request) -> None:
    if not services.analytics_allowed(user=request.user):
        raise ApplicationError(
            "The analytics API needs the Business plan (or a staff account).",
            code=Code.NOT_ENTITLED,
            status_code=status.HTTP_403_FORBIDDEN,
        )


_ENTITLEMENT_403 = OpenApiResponse(
    ErrorSerializer,
    description="`analytics_not_entitled`: neither staff nor on a plan with the "
    "analytics API",
)

GUARANTEE = """
**Privacy guarantee.** Every number here is differentially private with the
stated `epsilon`, and the unit of privacy is **one user**: whatever one person
did on APEX (all their ratings, clicks and watches, or nothing at all) changes
the probability of any answer by at most a factor of e^epsilon. Each user's
counted records are cut to `max_contributions_per_user` (a seeded sample),
then discrete Laplace noise of scale `noise_scale` =
`max_contributions_per_user / epsilon` is added to every count (OpenDP). Every
public group (the fixed lists of age bands, genders, MovieLens occupations,
plus `unknown`; genres and movies from the public catalog) is always
released, noisy zeros included, so which groups exist reveals nothing. Counts
are unbiased and may be negative; the top movies of a group are ranked by
the noisy counts (post-processing, free).

**Budget.** Releases about the interaction log add up within a calendar month
(UTC) to at most the cap (`APEX_DP_EPSILON_CAP`); a release that would pass it
answers **409** `privacy_budget_exhausted` and spends nothing. The same query
(release, dimension, epsilon, n) in the same month returns its earlier answer
(`cached: true`) and spends nothing. Budgets of different months add up for a
user present in both.
"""


# ------------------------------------------------------------------ private analytics
class PrivateGroupMovieSerializer(serializers.Serializer):
    movie_id = serializers.IntegerField()
    title = serializers.CharField()
    count = serializers.IntegerField(help_text="Noisy count of users' positive events")


class PrivateGroupSerializer(serializers.Serializer):
    group = serializers.CharField(help_text="The demographic group (public key)")
    counts = serializers.DictField(
        child=serializers.IntegerField(),
        required=False,
        help_text="`genre_counts`: noisy interaction count per genre",
    )
    movies = PrivateGroupMovieSerializer(
        many=True, required=False, help_text="`top_movies`: the top n by noisy count"
    )


class PrivacyBudgetSerializer(serializers.Serializer):
    epsilon_cap = serializers.FloatField()
    epsilon_spent = serializers.FloatField()
    epsilon_left = serializers.FloatField()


class RecommendationAnalyticsSerializer(serializers.Serializer):
    release = serializers.ChoiceField(services.RELEASES)
    dimension = serializers.ChoiceField(selectors.DIMENSIONS)
    dataset = serializers.CharField()
    period = serializers.CharField(help_text="The budget period, YYYY-MM (UTC)")
    epsilon = serializers.FloatField()
    unit_of_privacy = serializers.CharField()
    max_contributions_per_user = serializers.IntegerField()
    noise_scale = serializers.FloatField(help_text="Discrete Laplace scale")
    mechanism = serializers.CharField()
    cached = serializers.BooleanField(
        help_text="Answered from this period's earlier identical release"
    )
    released_at = serializers.DateTimeField()
    budget = PrivacyBudgetSerializer()
    groups = PrivateGroupSerializer(many=True)


class RecommendationAnalyticsApi(APIView):
    class InputSerializer(serializers.Serializer):
        release = serializers.ChoiceField(services.RELEASES, default="genre_counts")
        dimension = serializers.ChoiceField(selectors.DIMENSIONS, default="age_band")
        epsilon = serializers.FloatField(
            required=False,
            min_value=0.001,
            # the monthly cap: a release can never spend more (issue 18)
            max_value=settings.APEX_DP_EPSILON_CAP,
            help_text="Privacy loss of this release (default "
            "APEX_DP_DEFAULT_EPSILON); at most the monthly cap",
        )
        n = serializers.IntegerField(
            default=10, min_value=1, max_value=services.MAX_TOP_N,
            help_text="top_movies: movies per group",
        )  # fmt: skip

    @extend_schema(
        summary="Differentially private interaction analytics per demographic group",
        description="Interaction counts per genre x group (`genre_counts`) or the "
        "top movies per group (`top_movies`), for one demographic dimension. "
        "Staff, or a plan with the analytics API (Business).\n" + GUARANTEE,
        tags=["analytics"],
        parameters=[InputSerializer],
        responses={
            200: RecommendationAnalyticsSerializer,
            400: OpenApiResponse(ErrorSerializer, description="`invalid` parameters"),
            401: _401,
            403: _ENTITLEMENT_403,
            409: OpenApiResponse(
                ErrorSerializer,
                description="`privacy_budget_exhausted`: the month's budget cannot "
                "pay for this release (detail: epsilon_requested, epsilon_left)",
            ),
        },
        examples=[
            OpenApiExample(
                "Budget exhausted",
                value={
                    "code": "privacy_budget_exhausted",
                    "message": "The privacy budget of this period cannot pay for "
                    "this release.",
                    "detail": {
                        "dataset": "interactions",
                        "period": "2026-12",
                        "epsilon_requested": 0.5,
                        "epsilon_left": 0.25,
                        "epsilon_cap": 4.0,
                    },
                },  # fmt: skip
                response_only=True,
                status_codes=["409"],
            )
        ],
    )
    def get(self, request):
        _require_analytics(request)
        params = self.InputSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        answer = services.dp_release(
            **params.validated_data, requested_by=request.user.pk
        )
        body = selectors.release_payload(answer.release, cached=answer.cached)
        return Response(RecommendationAnalyticsSerializer(body).data)


# ------------------------------------------------------------------ offline metrics
class IntervalSerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()


class ModelMetricsSerializer(serializers.Serializer):
    ndcg_10 = IntervalSerializer(source="ndcg@10", help_text="NDCG@10, 95 % t interval")
    hr_10 = IntervalSerializer(source="hr@10")
    mrr_10 = IntervalSerializer(source="mrr@10")
    coverage = serializers.FloatField(allow_null=True)
    gini = serializers.FloatField(allow_null=True)
    long_tail_share = serializers.FloatField(allow_null=True)
    users = serializers.IntegerField()


class OfflineMetricsSerializer(serializers.Serializer):
    artifact_version = serializers.CharField()
    evaluated_at = serializers.DateTimeField()
    protocol = serializers.DictField()
    data_snapshot = serializers.DictField()
    manifest_metrics = serializers.DictField(
        help_text="What training measured on the same test events (means)"
    )
    models = serializers.DictField(
        child=ModelMetricsSerializer(),
        help_text="`ensemble` and each member with weight",
    )


class OfflineMetricsApi(APIView):
    @extend_schema(
        summary="The current artifact's offline evaluation",
        description="Full-ranking NDCG/HR/MRR@10 with 95 % intervals, coverage, "
        "exposure Gini and long-tail share of each member and the ensemble, on "
        "the held-out users of the artifact's own temporal leave-one-out split "
        "(written by `manage.py audit_fairness` and its beat job). Staff, or a "
        "plan with the analytics API. Keys `ndcg_10` etc. stand for `ndcg@10`.",
        tags=["analytics"],
        responses={
            200: OfflineMetricsSerializer,
            401: _401,
            403: _ENTITLEMENT_403,
            404: OpenApiResponse(
                ErrorSerializer,
                description="`no_active_artifact`, or `no_offline_metrics`: the "
                "current version has not been evaluated yet",
            ),
        },
    )
    def get(self, request):
        _require_analytics(request)
        artifact = rec_selectors.active_artifact()
        if artifact is None:
            raise ApplicationError(
                "There is no current artifact version.",
                code=Code.NO_ACTIVE_ARTIFACT,
                status_code=status.HTTP_404_NOT_FOUND,
            )
        evaluation = selectors.offline_evaluation(artifact_version=artifact["version"])
        if evaluation is None:
            raise ApplicationError(
                "The current artifact version has not been evaluated yet "
                "(run `manage.py audit_fairness`).",
                code=Code.NO_OFFLINE_METRICS,
                status_code=status.HTTP_404_NOT_FOUND,
                detail={"artifact_version": artifact["version"]},
            )
        body = {
            "artifact_version": evaluation.artifact_version,
            "evaluated_at": evaluation.created_at,
            "protocol": evaluation.protocol,
            "data_snapshot": evaluation.data_snapshot,
            "manifest_metrics": artifact["manifest"].get("metrics") or {},
            "models": evaluation.results,
        }
        return Response(OfflineMetricsSerializer(body).data)


# ------------------------------------------------------------------ SLOs
class SloTargetsSerializer(serializers.Serializer):
    availability = serializers.FloatField(help_text="Share of non-5xx answers")
    p95_ms = serializers.FloatField()


class SloWindowSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="5xx answers")
    error_rate = serializers.FloatField()
    p50_ms = serializers.FloatField(allow_null=True)
    p95_ms = serializers.FloatField(allow_null=True)
    p99_ms = serializers.FloatField(allow_null=True)
    latency_met = serializers.BooleanField(help_text="p95 within its target")
    error_budget_left = serializers.FloatField(
        help_text="1 - errors / allowed errors (1: untouched, 0: spent, <0: overspent)"
    )


class SloWindowsSerializer(serializers.Serializer):
    def get_fields(self):
        return {name: SloWindowSerializer(allow_null=True) for name in slo.WINDOWS}


class SloRouteSerializer(serializers.Serializer):
    route = serializers.CharField(help_text="`METHOD url-pattern`")
    targets = SloTargetsSerializer()
    windows = SloWindowsSerializer()


class SloReportSerializer(serializers.Serializer):
    generated_at = serializers.FloatField(help_text="Unix time")
    windows = serializers.DictField(
        child=serializers.IntegerField(), help_text="Window name: seconds"
    )
    bucket_bounds_ms = serializers.ListField(child=serializers.FloatField())
    routes = SloRouteSerializer(many=True)


class SloApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Latency and errors per route over 5 minutes, 1 hour, 24 hours",
        description="Every process counts its requests per minute, route and "
        "latency bucket and adds them to Redis every few seconds; this reads "
        "the last 1,440 minutes of all processes together. Quantiles are "
        "interpolated inside histogram buckets (as Prometheus does). Staff only.",
        tags=["platform"],
        responses={
            200: SloReportSerializer,
            401: _401,
            403: OpenApiResponse(ErrorSerializer, description="`permission_denied`"),
        },
    )
    def get(self, request):
        return Response(SloReportSerializer(slo.report()).data)
