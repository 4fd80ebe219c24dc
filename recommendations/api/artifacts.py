"""``/v1/artifacts/health`` and ``/v1/artifacts/reload``.

Health is public like the platform probes (it names versions and file paths,
nothing personal) but throttled, because it hashes every artifact file.
Reload is for staff only: this process reloads, then announces it, and the
other serving processes follow (``recommendations.serving.broadcast``).
"""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import serializers
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from apex_site.errors import ApplicationError, ErrorSerializer
from recommendations.serving import broadcast
from recommendations.serving.runtime import get_runtime


class MismatchSerializer(serializers.Serializer):
    path = serializers.CharField()
    expected = serializers.JSONField(help_text="Size in bytes or SHA-256 hex")
    actual = serializers.JSONField(help_text="Size in bytes or SHA-256 hex")


class VerifyReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    version = serializers.CharField()
    missing = serializers.ListField(child=serializers.CharField())
    size_mismatches = MismatchSerializer(many=True)
    checksum_mismatches = MismatchSerializer(many=True)
    unexpected = serializers.ListField(child=serializers.CharField())
    manifest_error = serializers.CharField(allow_null=True)
    checked_files = serializers.IntegerField()
    checked_bytes = serializers.IntegerField()
    duration_ms = serializers.FloatField()


class ArtifactsHealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField()
    current_version = serializers.CharField(allow_null=True)
    loaded_version = serializers.CharField(
        allow_null=True, help_text="The version this process serves (null: none yet)"
    )
    report = VerifyReportSerializer(allow_null=True)
    problem = ErrorSerializer(
        allow_null=True, help_text="Why nothing could be verified"
    )


class TierDecisionSerializer(serializers.Serializer):
    tier = serializers.IntegerField(min_value=1, max_value=3)
    name = serializers.ChoiceField(["pytorch", "onnx", "content"])
    reason = serializers.CharField()
    requested = serializers.CharField(allow_null=True)
    downgraded_from = serializers.IntegerField(allow_null=True)
    detected = serializers.DictField()
    device = serializers.ChoiceField(["cuda", "cpu"])


class ArtifactsReloadInputSerializer(serializers.Serializer):
    version = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        required=False,
        help_text="Version to load and make current (default: the current one)",
    )


class ReloadOutputSerializer(serializers.Serializer):
    version = serializers.CharField()
    previous_version = serializers.CharField(allow_null=True)
    tier = TierDecisionSerializer()
    duration_ms = serializers.FloatField()
    scope = serializers.CharField(
        help_text="`all_processes`: this process reloaded; the others follow "
        "within `APEX_RELOAD_POLL_SECONDS` (default 2 s)"
    )


_HEALTHY = {
    "healthy": True,
    "current_version": "20261127T021652Z",
    "loaded_version": "20261127T021652Z",
    "report": {
        "ok": True,
        "version": "20261127T021652Z",
        "missing": [],
        "size_mismatches": [],
        "checksum_mismatches": [],
        "unexpected": [],
        "manifest_error": None,
        "checked_files": 14,
        "checked_bytes": 48213377,
        "duration_ms": 61.2,
    },
    "problem": None,
}
_CORRUPT = {
    **_HEALTHY,
    "healthy": False,
    "report": {
        **_HEALTHY["report"],
        "ok": False,
        "missing": ["faiss/items.index"],
        "checksum_mismatches": [
            {
                "path": "onnx/sasrec.onnx",
                "expected": "9f2c…e01a",
                "actual": "41d7…b3c9",
            }
        ],
        "unexpected": ["notes.txt"],
        "checked_files": 12,
    },
}


class ArtifactsHealthApi(APIView):
    """Verify every checksum of the current (or a named) artifact version."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Verify the serving artifacts against their manifest",
        tags=["artifacts"],
        parameters=[
            OpenApiParameter(
                "version",
                str,
                description="Check this version instead of the current one",
            )
        ],
        responses={
            200: OpenApiResponse(ArtifactsHealthSerializer, description="Healthy"),
            503: OpenApiResponse(
                ArtifactsHealthSerializer,
                description="Missing, changed or unexpected files, an unreadable "
                "manifest, or no artifacts at all (`problem`)",
            ),
            404: OpenApiResponse(
                ErrorSerializer,
                description="`artifact_version_not_found`: no such version",
            ),
        },
        examples=[
            OpenApiExample("Healthy", value=_HEALTHY, response_only=True),
            OpenApiExample(
                "Tampered", value=_CORRUPT, response_only=True, status_codes=["503"]
            ),
        ],
    )
    def get(self, request):
        runtime = get_runtime()
        loaded = runtime.peek()
        store = runtime.store
        version = request.query_params.get("version") or None
        body = {
            "healthy": False,
            "current_version": None,
            "loaded_version": loaded.version if loaded else None,
            "report": None,
            "problem": None,
        }
        try:
            body["current_version"] = store.current_version()
            if version is not None:
                store.path(version)  # 404 for an unknown version, even when
            report = store.verify(version)  # nothing is current
        except ApplicationError as exc:
            if exc.status_code == 404:
                raise
            body["problem"] = {
                "code": exc.code,
                "message": exc.message,
                "detail": exc.detail,
            }
            return Response(body, status=503)
        body["report"] = report.as_dict()
        body["healthy"] = report.ok
        return Response(body, status=200 if report.ok else 503)


class ArtifactsReloadApi(APIView):
    """Load a version beside the active one, then swap (staff only)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        summary="Hot-reload the serving artifacts in every serving process",
        description="Loads the version beside the one being served and swaps "
        "once it is complete; requests in flight keep the old one. A failed load "
        "keeps the old version. The answering process reloads before it "
        "answers; every other serving process follows within "
        "`APEX_RELOAD_POLL_SECONDS` (announced through the shared cache), "
        "loading beside its old bundle in the same way.",
        tags=["artifacts"],
        request=ArtifactsReloadInputSerializer,
        responses={
            200: ReloadOutputSerializer,
            400: ErrorSerializer,
            401: ErrorSerializer,
            403: ErrorSerializer,
            404: OpenApiResponse(
                ErrorSerializer, description="`artifact_version_not_found`"
            ),
            422: OpenApiResponse(
                ErrorSerializer,
                description="`artifact_load_failed`: the version failed its "
                "checksums or could not be loaded; the old one is still served",
            ),
            503: OpenApiResponse(
                ErrorSerializer,
                description="`artifacts_root_missing` / `no_current_artifacts`",
            ),
        },
        examples=[
            OpenApiExample(
                "Load a given version",
                value={"version": "20261127T021652Z"},
                request_only=True,
            ),
            OpenApiExample(
                "Reloaded",
                value={
                    "version": "20261127T021652Z",
                    "previous_version": "20261126T180000Z",
                    "tier": {
                        "tier": 2,
                        "name": "onnx",
                        "reason": "no CUDA (no NVIDIA driver); 15890 MiB RAM "
                        "(>= 8192 MiB) and onnxruntime importable",
                        "requested": None,
                        "downgraded_from": None,
                        "detected": {"cuda": False, "onnxruntime": True},
                        "device": "cpu",
                    },
                    "duration_ms": 412.5,
                    "scope": "all_processes",
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        serializer = ArtifactsReloadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        runtime = get_runtime()
        result = runtime.reload(serializer.validated_data.get("version"))
        runtime.mark_seen(broadcast.announce())
        return Response({**result.as_dict(), "scope": "all_processes"})
