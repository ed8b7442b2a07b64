"""``python -m flowsim.cli ARGS``: the ``flowsim`` command in a fresh interpreter."""

import sys

from flowsim.cli import main

sys.exit(main())
