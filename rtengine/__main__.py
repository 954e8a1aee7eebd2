"""``python -m rtengine`` is the ``rtengine`` command."""

import sys

from ._cli import main

sys.exit(main())
