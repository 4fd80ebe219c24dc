from django.conf import settings

from apex_site import __version__


def product(request) -> dict:
    return {"apex_version": __version__, "apex_run_mode": settings.RUN_MODE}
