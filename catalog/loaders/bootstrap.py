"""First-start setup for ``make run``: ML-100K, TMDB CSVs, a demo account.

Idempotent and quick once done: a finished bootstrap is recognised by the
ML-100K movies and the demo account being present.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from catalog.loaders.movielens import movielens_load, source_label
from catalog.loaders.tmdb import tmdb_load
from catalog.models import Movie
from learning import selectors as learning_selectors
from learning import services as learning_services
from learning.services import InteractionRow

logger = logging.getLogger(__name__)

DEMO_SOURCE = "demo"
DEFAULT_DEMO_MOVIELENS_USER = 1  # 272 ratings across many genres


@dataclass
class BootstrapResult:
    already_done: bool
    demo_email: str
    demo_password: str | None  # only when it was set by this run


def bootstrap_is_done() -> bool:
    User = get_user_model()
    return (
        Movie.objects.filter(ml100k_id__isnull=False).exists()
        and User.objects.filter(email=settings.APEX_DEMO_EMAIL).exists()
    )


def bootstrap_run(
    *,
    write: Callable[[str], None],
    demo_movielens_user: int = DEFAULT_DEMO_MOVIELENS_USER,
    reset_demo_password: bool = False,
    force: bool = False,
) -> BootstrapResult:
    email = settings.APEX_DEMO_EMAIL
    if bootstrap_is_done() and not force and not reset_demo_password:
        return BootstrapResult(True, email, None)

    if force or not Movie.objects.filter(ml100k_id__isnull=False).exists():
        report = movielens_load(
            dataset="ml-100k", path=settings.APEX_MOVIELENS_PATH or None
        )
        for line in report.lines():
            write(line)
        movies_csv = settings.APEX_TMDB_MOVIES_CSV or None
        credits_csv = settings.APEX_TMDB_CREDITS_CSV or None
        if movies_csv or credits_csv:
            for line in tmdb_load(
                movies_csv=movies_csv, credits_csv=credits_csv
            ).lines():
                write(line)
        else:
            write("TMDB CSVs not configured (APEX_TMDB_MOVIES_CSV): skipped")
    password = demo_account_ensure(
        email=email,
        movielens_user=demo_movielens_user,
        reset_password=reset_demo_password,
    )
    return BootstrapResult(False, email, password)


def demo_account_ensure(
    *, email: str, movielens_user: int, reset_password: bool = False
) -> str | None:
    """Create the demo account with a copy of a MovieLens user's history.

    Returns the password when this call set it (it is stored only hashed).
    """
    User = get_user_model()
    source = source_label("ml-100k")
    template = User.objects.filter(
        source=source, external_id=str(movielens_user)
    ).first()
    password = None
    with transaction.atomic():
        demo = User.objects.filter(email=email).first()
        if demo is None or reset_password:
            password = settings.APEX_DEMO_PASSWORD or secrets.token_urlsafe(9)
        if demo is None:
            demo = User.objects.create_user(
                email=email,
                password=password,
                display_name="Demo viewer",
                age_band=template.age_band if template else "",
                gender=template.gender if template else "",
                occupation=template.occupation if template else "",
            )
        elif reset_password:
            demo.set_password(password)
            demo.save(update_fields=["password"])
    if template is not None:
        history = learning_selectors.interactions_of_user(user_id=template.pk)
        learning_services.interactions_bulk_import(
            rows=(
                InteractionRow(
                    user_id=demo.pk,
                    movie_id=event.movie_id,
                    kind=event.kind,
                    value=event.value,
                    occurred_at=event.occurred_at,
                    source=DEMO_SOURCE,
                    idempotency_key=f"demo:{demo.pk}:{event.idempotency_key}",
                )
                for event in history.iterator()
            )
        )
    else:
        logger.warning("demo account has no history: MovieLens user not loaded")
    return password
