"""``python -m recommendations.engine``: see :mod:`recommendations.engine.cli`."""

import sys

from recommendations.engine.cli import main

sys.exit(main())
