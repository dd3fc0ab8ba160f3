"""``python -m fleetwatch.agent``: the same as ``fleetwatch-agent``."""

import sys

from fleetwatch.agent.main import main

sys.exit(main())
