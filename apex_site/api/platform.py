"""Platform health endpoints: ``/v1/platform/status`` and ``/readiness``."""

from __future__ import annotations

import time

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apex_site import __version__, health
from apex_site.errors import ErrorSerializer
from apex_site.responses import json_response
from apex_site.timing import TimedApiView, stage
from recommendations.serving.runtime import get_runtime


class PlatformStatusApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(
        summary="Version, run mode and the state of every component",
        tags=["platform"],
        responses=inline_serializer(
            "PlatformStatus",
            {
                "version": serializers.CharField(),
                "git_commit": serializers.CharField(allow_null=True),
                "run_mode": serializers.CharField(),
                "database": serializers.DictField(),
                "redis": serializers.DictField(allow_null=True),
                "celery": serializers.DictField(),
                "serving": serializers.DictField(
                    help_text="Tier decision (with any downgrade), state and "
                    "loaded artifact version of this process; loads nothing"
                ),
            },
        ),
    )
    def get(self, request):
        redis_state = health.check_redis()
        return Response(
            {
                "version": __version__,
                "git_commit": health.git_commit(),
                "run_mode": settings.RUN_MODE,
                "database": health.check_database().as_dict(),
                "redis": redis_state.as_dict() if redis_state else None,
                "celery": health.celery_state(),
                "serving": get_runtime().status(),
            }
        )


_READINESS = inline_serializer(
    "Readiness",
    {
        "ready": serializers.BooleanField(),
        "components": serializers.DictField(),
        "failing": serializers.ListField(
            child=serializers.CharField(), required=False, help_text="When not ready"
        ),
    },
)


class PlatformReadinessApi(APIView):
    """200 when the database and (where configured) Redis answer, else 503."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(
        summary="Readiness probe",
        tags=["platform"],
        responses={
            200: _READINESS,
            503: OpenApiResponse(
                _READINESS, description="Not ready: `failing` names the components"
            ),
        },
    )
    def get(self, request):
        components = {"database": health.check_database()}
        redis_state = health.check_redis()
        if redis_state is not None:
            components["redis"] = redis_state
        failing = sorted(name for name, state in components.items() if not state.ok)
        body = {
            "ready": not failing,
            "components": {name: s.as_dict() for name, s in components.items()},
        }
        if failing:
            body["failing"] = failing
            return Response(body, status=503)
        return Response(body)


class PlatformPingApi(TimedApiView):
    """Who am I, at the framework's cost floor.

    Authentication (JWT, API key or session) and a JSON answer, nothing else:
    no throttle, no database (the credentials come from the cache). Clients
    use it to check their credentials; the serving benchmarks use it as the
    floor beside the recommendation endpoints (issue 17).
    """

    throttle_classes: list = []

    @extend_schema(
        summary="Check credentials",
        tags=["platform"],
        responses={
            200: inline_serializer(
                "Ping",
                {
                    "user_id": serializers.IntegerField(),
                    "staff": serializers.BooleanField(),
                },
            ),
            401: ErrorSerializer,
        },
    )
    def get(self, request):
        started = time.perf_counter()
        user = request.user
        response = json_response({"user_id": user.pk, "staff": user.is_staff})
        stage(request, "render", 1e3 * (time.perf_counter() - started))
        return response
