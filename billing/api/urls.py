from django.urls import path

from billing.api.views import CheckoutApi, PlansApi, PortalApi, UsageApi

urlpatterns = [
    path("billing/plans", PlansApi.as_view(), name="billing-plans"),
    path("billing/checkout", CheckoutApi.as_view(), name="billing-checkout"),
    path("billing/portal", PortalApi.as_view(), name="billing-portal"),
    path("billing/usage", UsageApi.as_view(), name="billing-usage"),
]
