"""DRF views of the recommendations app (``/v1/artifacts/*``)."""
