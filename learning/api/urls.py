from django.urls import path

from learning.api.events import EventsApi, FeaturesApi

urlpatterns = [
    path("events", EventsApi.as_view(), name="events"),
    path("events/features", FeaturesApi.as_view(), name="events-features"),
]
