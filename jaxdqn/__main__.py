"""``python -m jaxdqn``: the command line (see :mod:`jaxdqn.cli`)."""

import sys

from jaxdqn.cli import main

sys.exit(main())
