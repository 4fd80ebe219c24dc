"""The live feed end to end, every piece real: a rating posted over HTTP to
the production shape (nginx in front of gunicorn, websockets on uvicorn) is
written by ``learning`` and announced after commit; the receiver enqueues
``recommendations.feed_refresh`` on Redis; a Celery worker process recomputes
the feed and publishes it through the Redis channel layer; the server pushes
it down the user's open websocket."""

from __future__ import annotations

import json
import re
import uuid
from http.cookiejar import CookieJar
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest
from django.conf import settings
from websockets.sync.client import connect

from catalog.tests.factories import GenreFactory, MovieFactory
from learning import selectors as learning_selectors

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _session_cookie(client, user) -> str:
    client.force_login(user)  # a committed session row (transactional test)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_a_rating_over_http_reaches_the_open_tab_through_the_worker(
    production_server, client, user
):
    drama = GenreFactory(name="Drama")
    rated, *others = [MovieFactory(rating_count=100 - i) for i in range(4)]
    for movie in (rated, *others):
        movie.genres.add(drama)
    session = _session_cookie(client, user)
    jar = CookieJar()
    http = build_opener(HTTPCookieProcessor(jar))
    origin = f"http://{production_server}"
    cookie = f"{settings.SESSION_COOKIE_NAME}={session}"

    with connect(
        f"ws://{production_server}/ws/feed/",
        additional_headers={"Cookie": cookie, "Origin": origin},
        open_timeout=10,
    ) as socket:
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong"}  # joined

        page = http.open(
            Request(f"{origin}/catalog/movies/{rated.pk}/", headers={"Cookie": cookie})
        ).read()
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        csrf = next(c.value for c in jar if c.name == settings.CSRF_COOKIE_NAME)
        form = urlencode(
            {
                "stars": "4.5",
                "idempotency_key": str(uuid.uuid4()),
                "csrfmiddlewaretoken": token.group(1).decode(),
            }
        ).encode()
        response = http.open(
            Request(
                f"{origin}/catalog/movies/{rated.pk}/rate/",
                data=form,
                headers={
                    "Cookie": f"{cookie}; {settings.CSRF_COOKIE_NAME}={csrf}",
                    "Origin": origin,
                },
            )
        )
        assert response.status == 200  # followed the redirect to the movie page
        assert learning_selectors.user_rating(
            user_id=user.pk, movie_id=rated.pk
        ) == pytest.approx(4.5)

        message = json.loads(socket.recv(timeout=60))  # the worker's push

    assert message["type"] == "feed.update"
    payload = message["payload"]
    ids = [item["id"] for item in payload["items"]]
    assert rated.pk not in ids  # the new history is already in the feed
    assert payload["meta"]["fallback"] is True  # no artifacts: database list
    assert set(ids) == {movie.pk for movie in others}  # genre neighbours of it

    # the proxy serves the collected static files itself (not Django)
    static = build_opener().open(f"{origin}/static/css/apex.css")
    assert static.status == 200
    assert static.headers["Cache-Control"] == "public, max-age=604800"
    assert static.headers["Server"].startswith("nginx")


def test_an_api_event_reaches_the_open_tab_with_its_cause(
    production_server, client, user
):
    from accounts.services import api_key_create

    drama = GenreFactory(name="Drama")
    clicked, *others = [MovieFactory(rating_count=50 - i) for i in range(3)]
    for movie in (clicked, *others):
        movie.genres.add(drama)
    cookie = f"{settings.SESSION_COOKIE_NAME}={_session_cookie(client, user)}"
    _key, raw = api_key_create(user=user, name="ingest")
    with connect(
        f"ws://{production_server}/ws/feed/",
        additional_headers={"Cookie": cookie, "Origin": f"http://{production_server}"},
        open_timeout=10,
    ) as socket:
        socket.send(json.dumps({"type": "ping"}))
        assert json.loads(socket.recv(timeout=10)) == {"type": "pong"}
        response = build_opener().open(
            Request(
                f"http://{production_server}/v1/events",
                data=json.dumps({"kind": "click", "movie_id": clicked.pk}).encode(),
                headers={
                    "Authorization": f"Api-Key {raw}",
                    "Content-Type": "application/json",
                },
            )
        )
        assert response.status == 202
        event_id = json.loads(response.read())["events"][0]["id"]
        message = json.loads(socket.recv(timeout=60))
    payload = message["payload"]
    assert payload["cause"]["event_id"] == event_id
    assert payload["cause"]["note"] == f"Updated after you opened {clicked.title}"
    assert {item["id"] for item in payload["items"]} == {m.pk for m in others}
