"""``/v1/billing/*``: plans (public), Checkout, the Customer Portal, usage."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apex_site.errors import ErrorSerializer
from billing import selectors, services
from billing.plans import PLANS


def _page_url(request, name: str, query: str = "") -> str:
    from django.urls import reverse

    return request.build_absolute_uri(reverse(name)) + query


_NOT_CONFIGURED = OpenApiExample(
    "Billing not configured",
    value={
        "code": "billing_not_configured",
        "message": "Billing is not configured on this server (no Stripe keys).",
        "detail": None,
    },
    response_only=True,
    status_codes=["503"],
)
_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated"),
    502: OpenApiResponse(ErrorSerializer, description="`stripe_error`"),
    503: OpenApiResponse(
        ErrorSerializer, description="`billing_not_configured`: no Stripe keys"
    ),
}


# -------------------------------------------------------------------- plans
class PlanSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    monthly_quota = serializers.IntegerField(help_text="Metered calls a month")
    hard_limit = serializers.IntegerField(
        help_text="Metered calls a month after which calls get 429"
    )
    rate_per_second = serializers.IntegerField()
    price_cents = serializers.IntegerField(help_text="USD cents a month")
    overage_cents_per_1000 = serializers.IntegerField(allow_null=True)
    analytics_api = serializers.BooleanField()
    purchasable = serializers.BooleanField(
        help_text="Checkout is possible (a paid plan, Stripe configured and synced)"
    )


class PlansApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="The plans",
        description="Quotas count metered calls (`/v1/recommendations/*`, "
        "`/v1/search*`, `/v1/events*`) per calendar month (UTC).",
        tags=["billing"],
        responses={200: PlanSerializer(many=True)},
        examples=[
            OpenApiExample(
                "Plans",
                value=[
                    {
                        "key": "free",
                        "name": "Free",
                        "description": "Try the API: 1,000 calls a month.",
                        "monthly_quota": 1000,
                        "hard_limit": 1000,
                        "rate_per_second": 10,
                        "price_cents": 0,
                        "overage_cents_per_1000": None,
                        "analytics_api": False,
                        "purchasable": False,
                    }
                ],
                response_only=True,
            )
        ],
    )
    def get(self, request):
        configured = selectors.billing_configured()
        rows = [
            {
                "key": str(plan.key),
                "name": plan.name,
                "description": plan.description,
                "monthly_quota": plan.monthly_quota,
                "hard_limit": plan.hard_limit,
                "rate_per_second": plan.rate_per_second,
                "price_cents": plan.price_cents,
                "overage_cents_per_1000": plan.overage_cents_per_1000,
                "analytics_api": plan.analytics_api,
                "purchasable": plan.paid
                and configured
                and bool(selectors.plan_prices(plan=plan)),
            }
            for plan in selectors.plan_list()
        ]
        return Response(PlanSerializer(rows, many=True).data)


# ----------------------------------------------------------------- checkout
@extend_schema_field(
    {"type": "string", "enum": [str(k) for k, plan in PLANS.items() if plan.paid]}
)
class _PlanField(serializers.ChoiceField):
    """Any plan key; the schema names the paid ones, the only ones Checkout
    sells (the free plan answers 400 `plan_not_purchasable`)."""


class _RedirectUrlField(serializers.CharField):
    """An absolute http(s) URL Stripe sends the customer back to. One regular
    expression is both the check and the schema's ``pattern`` (Django's
    ``URLValidator`` refuses host names a JSON-schema ``uri`` allows, so a
    generated client met 400s on schema-valid requests; issue 18)."""

    PATTERN = r"^https?://[^\s/?#@]+(?:[/?#]\S*)?$"

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", 2048)
        super().__init__(**kwargs)
        self.validators.append(
            RegexValidator(self.PATTERN, message="Enter an absolute http(s) URL.")
        )


class CheckoutApi(APIView):
    class CheckoutInputSerializer(serializers.Serializer):
        plan = _PlanField([str(k) for k in PLANS])
        success_url = _RedirectUrlField(
            required=False, help_text="Default: the account's billing page"
        )
        cancel_url = _RedirectUrlField(
            required=False, help_text="Default: the pricing page"
        )

    class CheckoutOutputSerializer(serializers.Serializer):
        url = serializers.URLField(help_text="Send the customer here")

    @extend_schema(
        summary="Start a Stripe Checkout for a paid plan",
        description="Returns the Checkout Session's URL. The plan changes when "
        "Stripe's signed webhook says the subscription is active — not on the "
        "redirect back.",
        tags=["billing"],
        request=CheckoutInputSerializer,
        responses={
            200: CheckoutOutputSerializer,
            400: OpenApiResponse(
                ErrorSerializer, description="`invalid`, `plan_not_purchasable`"
            ),
            409: OpenApiResponse(ErrorSerializer, description="`already_subscribed`"),
            **_ERRORS,
        },
        examples=[
            OpenApiExample("Pro", value={"plan": "pro"}, request_only=True),
            OpenApiExample(
                "Session",
                value={"url": "https://checkout.stripe.com/c/pay/cs_test_a1b2"},
                response_only=True,
                status_codes=["200"],
            ),
            _NOT_CONFIGURED,
        ],
    )
    def post(self, request):
        data = self.CheckoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        url = services.checkout_session_create(
            user=request.user,
            plan_key=data.validated_data["plan"],
            success_url=data.validated_data.get("success_url")
            or _page_url(request, "billing:account", "?checkout=success"),
            cancel_url=data.validated_data.get("cancel_url")
            or _page_url(request, "billing:pricing", "?checkout=canceled"),
        )
        return Response(self.CheckoutOutputSerializer({"url": url}).data)


class PortalApi(APIView):
    class PortalInputSerializer(serializers.Serializer):
        return_url = _RedirectUrlField(
            required=False, help_text="Default: the account's billing page"
        )

    class PortalOutputSerializer(serializers.Serializer):
        url = serializers.URLField()

    @extend_schema(
        summary="Open the Stripe Customer Portal",
        description="Payment methods, invoices, plan changes and cancellation.",
        tags=["billing"],
        request=PortalInputSerializer,
        responses={
            200: PortalOutputSerializer,
            409: OpenApiResponse(
                ErrorSerializer, description="`no_billing_customer`: never subscribed"
            ),
            **_ERRORS,
        },
        examples=[
            OpenApiExample(
                "Session",
                value={"url": "https://billing.stripe.com/p/session/test_a1b2"},
                response_only=True,
                status_codes=["200"],
            ),
            _NOT_CONFIGURED,
        ],
    )
    def post(self, request):
        data = self.PortalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        url = services.portal_session_create(
            user=request.user,
            return_url=data.validated_data.get("return_url")
            or _page_url(request, "billing:account"),
        )
        return Response(self.PortalOutputSerializer({"url": url}).data)


# -------------------------------------------------------------------- usage
class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    calls = serializers.IntegerField()


class UsageApi(APIView):
    class UsageOutputSerializer(serializers.Serializer):
        plan = serializers.CharField(source="plan.key")
        period_start = serializers.DateTimeField()
        reset_at = serializers.DateTimeField()
        used = serializers.IntegerField()
        quota = serializers.IntegerField()
        remaining = serializers.IntegerField()
        overage = serializers.IntegerField(
            help_text="Calls over the quota billed as overage (metered plans)"
        )
        hard_limit = serializers.IntegerField()
        days = UsageDaySerializer(many=True, help_text="Each day of this month so far")

    @extend_schema(
        summary="This month's metered usage",
        tags=["billing"],
        responses={200: UsageOutputSerializer, 401: _ERRORS[401]},
        examples=[
            OpenApiExample(
                "Usage",
                value={
                    "plan": "free",
                    "period_start": "2026-12-01T00:00:00Z",
                    "reset_at": "2027-01-01T00:00:00Z",
                    "used": 412,
                    "quota": 1000,
                    "remaining": 588,
                    "overage": 0,
                    "hard_limit": 1000,
                    "days": [
                        {"day": "2026-12-01", "calls": 130},
                        {"day": "2026-12-02", "calls": 282},
                    ],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        usage = selectors.user_usage(user=request.user)
        return Response(
            self.UsageOutputSerializer(usage).data, status=status.HTTP_200_OK
        )
