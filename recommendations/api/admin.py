"""``POST /v1/admin/reload-ensemble-weights`` (staff only).

A thin view over ``services.ensemble_weights_serve``: loads the active
``EnsembleWeights`` version (weights and gate threshold) from the database
into the engine this process serves: ``services.ensemble_weights_apply``
builds a new engine beside the old one and the runtime swaps the bundle's
payload in one reference rebinding (``ServingRuntime.replace_payload``), so
requests in flight finish on the old
weights. Like ``/v1/artifacts/reload`` it then announces the change, and
every other serving process re-weights within ``APEX_RELOAD_POLL_SECONDS``
(``recommendations.serving.broadcast``).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from apex_site.errors import ErrorSerializer
from recommendations import services


class ReloadWeightsOutputSerializer(serializers.Serializer):
    weights_version = serializers.IntegerField()
    weights = serializers.DictField(child=serializers.FloatField())
    gate_threshold = serializers.FloatField(
        allow_null=True, help_text="null: the uncertainty gate never fires"
    )
    artifact_version = serializers.CharField()
    duration_ms = serializers.FloatField()
    scope = serializers.CharField(
        help_text="`all_processes`: this process re-weighted; the others follow "
        "within `APEX_RELOAD_POLL_SECONDS` (default 2 s)"
    )


class ReloadEnsembleWeightsApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Serve the active ensemble weights version in this process",
        description="Reads the active `EnsembleWeights` version, builds the "
        "serving engine with those weights beside the current one and swaps; "
        "requests in flight keep the old weights. Acts on the answering "
        "process only.",
        tags=["admin"],
        request=None,
        responses={
            200: ReloadWeightsOutputSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="`no_active_weights`: none is active"
            ),
            422: OpenApiResponse(
                ErrorSerializer,
                description="`weights_rejected`: the engine refused the weights "
                "(e.g. a member the artifacts do not contain); the old ones stay",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="`serving_unavailable` / `no_engine`: nothing to "
                "apply the weights to",
            ),
        },
        examples=[
            OpenApiExample(
                "Reloaded",
                value={
                    "weights_version": 4,
                    "weights": {"sasrec": 0.45, "lightgcn": 0.35, "ease": 0.2},
                    "gate_threshold": 0.82,
                    "artifact_version": "20261127T021652Z",
                    "duration_ms": 3.8,
                    "scope": "all_processes",
                },
                response_only=True,
            )
        ],
    )
    def post(self, request):
        return Response(services.ensemble_weights_serve())
