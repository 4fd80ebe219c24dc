"""Work a server process does once, before its first request.

Django imports the URLconf - and with it every view module and what they
import (DRF, the serving stack, numpy, scipy) - on the first request a
process serves. In a freshly started or respawned web worker that first
request took seconds of CPU, and every request queued behind it waited
(the events bench saw POSTs of 14 s after a worker start; issue 13).
Loading the URLconf when the application module is imported moves that
cost to the worker's start, before it accepts connections.
"""

from __future__ import annotations


def load_urlconf() -> None:
    """Import the root URLconf and every module it names."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the import is the point
