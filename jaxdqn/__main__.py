"""``python -m jaxdqn``: the command line (see :mod:`jaxdqn.host.cli`)."""

import sys

from jaxdqn.host.cli import main

sys.exit(main())
