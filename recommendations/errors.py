"""The recommendations app's error codes (``ApplicationError.code`` and
``meta.fallback_reason``; shared ones are ``apex_site.errors.ErrorCode``)."""

from enum import StrEnum


class RecommendationsErrorCode(StrEnum):
    # serving and artifacts (503 / 409 / 422 of the API)
    SERVING_UNAVAILABLE = "serving_unavailable"
    ARTIFACT_LOAD_FAILED = "artifact_load_failed"
    ARTIFACTS_ROOT_MISSING = "artifacts_root_missing"
    NO_CURRENT_ARTIFACTS = "no_current_artifacts"
    ARTIFACT_VERSION_NOT_FOUND = "artifact_version_not_found"
    ARTIFACT_MANIFEST_INVALID = "artifact_manifest_invalid"
    ARTIFACT_COMMIT_FAILED = "artifact_commit_failed"
    NO_ENGINE = "no_engine"
    NO_ACTIVE_WEIGHTS = "no_active_weights"
    WEIGHTS_REJECTED = "weights_rejected"
    TRAINING_FAILED = "training_failed"
    ONLINE_FOLD_FAILED = "online_fold_failed"
    # fallback reasons (``meta.fallback_reason``)
    ENGINE_ERROR = "engine_error"
    SERVING_ERROR = "serving_error"
    UNKNOWN_ITEM = "unknown_item"
