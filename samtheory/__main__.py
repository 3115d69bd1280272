"""``python -m samtheory ...`` is the ``samtheory`` command."""

import sys

from samtheory.cli import main

sys.exit(main())
