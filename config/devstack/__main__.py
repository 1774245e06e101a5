"""Entry point for ``python -m config.devstack``."""

import sys

from config.devstack.launcher import main

sys.exit(main())
