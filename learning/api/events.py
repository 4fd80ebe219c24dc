"""``POST /v1/events`` and ``GET /v1/events/features``.

Authentication as the rest of ``/v1`` (JWT, API key, session). Events are
the caller's own; a 202 means the events are in the interaction log (the
same table as ratings) — they are published to the event stream after the
commit, and the outbox catch-up publishes what a Redis outage kept back.
"""

from __future__ import annotations

import time
from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as accounts_selectors
from apex_site.errors import ApplicationError, ErrorCode, ErrorSerializer
from apex_site.timing import TimedApiView, stage
from learning import selectors, services
from learning.models import Interaction
from learning.services import MAX_BATCH, EventInput


# ------------------------------------------------------------------ input
class EventInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(Interaction.Kind.values)
    movie_id = serializers.IntegerField(min_value=1)
    value = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="rating: 0.5-5 in half stars (required); watchlist: 1 added / "
        "0 removed (required); watch: fraction watched 0-1 (optional); "
        "click: none",
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Default: now. At most 5 minutes ahead; at most "
        "`APEX_EVENTS_MAX_AGE_DAYS` (30) days old",
    )
    idempotency_key = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="The same key twice (per user) records one event",
    )
    request_id = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=64,
        help_text="The `request_id` of the served list the event came from",
    )


class EventBatchSerializer(serializers.Serializer):
    events = EventInputSerializer(many=True, help_text=f"1 to {MAX_BATCH} events")


EVENTS_REQUEST = PolymorphicProxySerializer(
    component_name="EventsRequest",
    serializers=[EventInputSerializer, EventBatchSerializer],
    resource_type_field_name=None,
)


_KINDS = frozenset(Interaction.Kind.values)
_FIELDS = frozenset(EventInputSerializer().fields)


def _plain_text(value: Any, max_length: int) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= max_length
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


def _canonical(item: Any) -> EventInput | None:
    """The event, typed, when it is in the canonical JSON form that
    ``EventInputSerializer`` accepts unchanged (a string kind, an integer
    movie id, a JSON number or null value, plain ASCII keys, no
    ``occurred_at``); None otherwise, and the serializer judges it. The same
    result as the serializer at a tenth of its cost, for the events nearly
    every client sends (a test holds the two equal; issue 13's ingest)."""
    if type(item) is not dict or not item.keys() <= _FIELDS:
        return None
    kind, movie_id = item.get("kind"), item.get("movie_id")
    if type(kind) is not str or kind not in _KINDS:
        return None
    if type(movie_id) is not int or movie_id < 1:
        return None
    value = item.get("value")
    if value is not None and type(value) not in (int, float):
        return None
    if item.get("occurred_at") is not None:
        return None
    key, request_id = item.get("idempotency_key"), item.get("request_id")
    if key is not None and not _plain_text(key, 100):
        return None
    if request_id is not None and not _plain_text(request_id, 64):
        return None
    return EventInput(
        kind=kind,
        movie_id=movie_id,
        value=None if value is None else float(value),
        idempotency_key=key,
        request_id=request_id,
    )


def _parse(data: Any) -> list[EventInput]:
    """One event or ``{"events": [...]}``; every type error of every event at
    once, with the rules' problems of the others (``services.events_validate``;
    ``events_record`` checks the rules itself when the types are right); 400
    naming each bad event (by index) and field, before anything is written."""
    if not isinstance(data, dict):
        raise ApplicationError(
            'Send one event object or {"events": [...]}.', code=ErrorCode.INVALID
        )
    batch = "events" in data
    raw = data["events"] if batch else [data]
    if not isinstance(raw, list) or not raw:
        raise ApplicationError(
            "`events` must be a list of 1 to 500 events.",
            code=ErrorCode.INVALID,
            detail={"events": ["Must be a non-empty list."]},
        )
    if len(raw) > MAX_BATCH:
        raise ApplicationError(
            f"At most {MAX_BATCH} events in one batch.",
            code=ErrorCode.INVALID,
            detail={"events": [f"{len(raw)} events; the limit is {MAX_BATCH}."]},
        )
    errors: dict[str, Any] = {}
    parsed: dict[int, EventInput] = {}
    for index, item in enumerate(raw):
        fast = _canonical(item)
        if fast is not None:
            parsed[index] = fast
            continue
        serializer = EventInputSerializer(data=item)
        if serializer.is_valid():
            parsed[index] = EventInput(**serializer.validated_data)
        else:
            errors[str(index)] = serializer.errors
    order = sorted(parsed)
    if errors:  # report the rules' problems of the other events too
        rule_errors = services.events_validate(events=[parsed[i] for i in order])
        for position, problems in rule_errors.items():
            errors[str(order[int(position)])] = problems
    if errors:
        raise ApplicationError(
            f"{len(errors)} of {len(raw)} events are invalid; none was recorded.",
            code=ErrorCode.INVALID,
            detail={"events": dict(sorted(errors.items(), key=lambda kv: int(kv[0])))},
        )
    return [parsed[i] for i in order]


# ------------------------------------------------------------------ output
class RecordedEventSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="event_id")
    created = serializers.BooleanField(
        help_text="false: the idempotency key was seen before; `id` is the "
        "first event's"
    )


class EventsAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    created = serializers.IntegerField()
    events = RecordedEventSerializer(many=True, help_text="In the request's order")


_EXAMPLE_EVENT = {
    "kind": "rating",
    "movie_id": 50,
    "value": 4.5,
    "occurred_at": "2026-12-04T18:30:00Z",
    "idempotency_key": "a1b2c3",
    "request_id": "3f0c1a7e9b2d4c66",
}


class EventsApi(TimedApiView):
    @extend_schema(
        summary="Record events (one, or a batch of up to 500)",
        description="Ratings, clicks, watches and watchlist changes of the "
        "caller. All or nothing: a batch with any invalid event is rejected "
        "with a 400 naming each bad event (by index) and field, and nothing "
        "is written. `202` means durable: the events are in the interaction "
        "log; they reach the online learner through the event stream.",
        tags=["events"],
        request=EVENTS_REQUEST,
        responses={
            202: EventsAcceptedSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="`invalid`: `detail.events` maps each bad event's "
                "index to its fields' problems",
            ),
            401: OpenApiResponse(ErrorSerializer, description="Not authenticated"),
        },
        examples=[
            OpenApiExample("One event", value=_EXAMPLE_EVENT, request_only=True),
            OpenApiExample(
                "A batch",
                value={
                    "events": [
                        _EXAMPLE_EVENT,
                        {"kind": "click", "movie_id": 172},
                        {"kind": "watchlist", "movie_id": 9, "value": 1},
                    ]
                },
                request_only=True,
            ),
            OpenApiExample(
                "Accepted",
                value={
                    "accepted": 2,
                    "created": 1,
                    "events": [
                        {"id": 100231, "created": True},
                        {"id": 100198, "created": False},
                    ],
                },
                response_only=True,
                status_codes=["202"],
            ),
            OpenApiExample(
                "Invalid",
                value={
                    "code": "invalid",
                    "message": "2 of 3 events are invalid; none was recorded.",
                    "detail": {
                        "events": {
                            "0": {
                                "value": ["A rating is 0.5 to 5 stars in half stars."]
                            },
                            "2": {"movie_id": ["No movie with id 999999."]},
                        }
                    },
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request):
        started = time.perf_counter()
        events = _parse(request.data)
        parsed = time.perf_counter()
        stage(request, "parse", 1e3 * (parsed - started))
        recorded = services.events_record(user_id=request.user.pk, events=events)
        stage(request, "write", 1e3 * (time.perf_counter() - parsed))
        # the shape of EventsAcceptedSerializer (the schema's), built directly:
        # the serializer cost more than the rest of the answer
        body = {
            "accepted": len(recorded),
            "created": sum(1 for r in recorded if r.created),
            "events": [{"id": r.event_id, "created": r.created} for r in recorded],
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


# ------------------------------------------------------------------ features
class RecentEventSerializer(serializers.Serializer):
    event_id = serializers.IntegerField()
    movie_id = serializers.IntegerField()
    kind = serializers.CharField()
    occurred_at = serializers.DateTimeField()


class GenreAffinitySerializer(serializers.Serializer):
    genre = serializers.CharField()
    weight = serializers.FloatField(help_text="Decayed count (half-life 30 days)")
    share = serializers.FloatField()


class SessionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    events = serializers.IntegerField()
    active = serializers.BooleanField(help_text="An event in the last 30 minutes")


class FeaturesSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    recent = RecentEventSerializer(many=True, help_text="Newest first (20 at most)")
    counts = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="Events per kind in the windows `1h`, `24h`, `7d`",
    )
    genre_affinity = GenreAffinitySerializer(many=True)
    session = SessionSerializer(allow_null=True)
    events_applied = serializers.IntegerField()
    last_event_at = serializers.DateTimeField(allow_null=True)
    updated_at = serializers.DateTimeField(
        allow_null=True, help_text="When the online learner last applied an event"
    )


class FeaturesApi(APIView):
    @extend_schema(
        summary="A user's real-time profile",
        description="What the online learner knows now: recent events, counts "
        "per kind in sliding windows, genre affinity, the session. Your own; "
        "staff may pass `user_id`.",
        tags=["events"],
        parameters=[
            OpenApiParameter(
                "user_id", int, description="Staff only: another user's profile"
            )
        ],
        responses={
            200: FeaturesSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Bad `user_id`"),
            401: OpenApiResponse(ErrorSerializer, description="Not authenticated"),
            403: OpenApiResponse(ErrorSerializer, description="Another user's"),
            404: OpenApiResponse(ErrorSerializer, description="No such user"),
        },
    )
    def get(self, request):
        raw = request.query_params.get("user_id")
        user_id = request.user.pk
        if raw not in (None, ""):
            try:
                user_id = int(raw)
            except ValueError:
                raise ApplicationError(
                    "`user_id` must be an integer.",
                    code=ErrorCode.INVALID,
                    detail={"user_id": ["A valid integer is required."]},
                ) from None
        if user_id != request.user.pk:
            if not request.user.is_staff:
                raise exceptions.PermissionDenied("You can read your own profile only.")
            if not accounts_selectors.user_exists(user_id=user_id):
                raise ApplicationError(
                    "No such user.", code=ErrorCode.NOT_FOUND, status_code=404
                )
        return Response(
            FeaturesSerializer(selectors.user_features(user_id=user_id)).data
        )
