from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from recommendations import views as recommendation_views

handler404 = "apex_site.errors.handler404"
handler500 = "apex_site.errors.handler500"

api_v1 = [
    path("", include("apex_site.api.urls")),
    path("auth/", include("accounts.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("recommendations.api.urls")),
    path("", include("learning.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("analytics.api.urls")),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    # first: the API's high-volume calls (events, recommendations) resolve
    # without trying every page pattern before them (0.1-0.2 ms a request)
    path("v1/", include(api_v1)),
    path("", recommendation_views.home, name="home"),
    path("accounts/", include("accounts.urls")),
    path("", include("catalog.urls")),
    path("", include("recommendations.urls")),
    path("", include("billing.urls")),
    path("experiments/", include("experiments.urls")),
    path("", include("analytics.urls")),  # /metrics, /staff/analytics/
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("admin/", admin.site.urls),
    # the split view serves its script as a file: no inline script for the CSP
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
]
