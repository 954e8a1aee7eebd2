"""``python -m rtengine`` is the ``rtengine`` command."""

import sys

from .apps._cli import main

sys.exit(main())
