from django.urls import path

from billing import views

app_name = "billing"

urlpatterns = [
    path("pricing/", views.pricing, name="pricing"),
    path("accounts/billing/", views.account, name="account"),
    path("accounts/billing/status/", views.account_status, name="account_status"),
    path("billing/checkout/<str:plan>/", views.checkout, name="checkout"),
    path("billing/portal/", views.portal, name="portal"),
]
