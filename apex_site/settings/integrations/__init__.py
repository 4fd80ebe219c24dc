"""Settings for each outside service and subsystem, one module each.

``base.py`` star-imports every module here, so a module lists the settings it
defines in ``__all__`` (``apex_site/tests/test_settings.py`` checks that nothing
is left out). Values come from the strict readers in ``..environment``.
"""
