"""Websocket routes of every app, in one list for ``asgi.py``."""

from recommendations.routing import websocket_urlpatterns as recommendation_routes

websocket_urlpatterns = [*recommendation_routes]
