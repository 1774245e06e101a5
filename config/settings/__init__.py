"""Settings for every environment, read from the environment, one module per concern.

``DJANGO_ENV`` is required. ``make dev`` writes ``.dev/env`` with random secrets and the
development switches; production sets ``DJANGO_ENV=production`` and the system checks in
``config.checks`` refuse anything that only belongs on a laptop. ``base`` comes first (it loads
``.env``); each app's module only reads its own variables.
"""

from config.settings.base import *  # noqa: F403
from config.settings.billing import *  # noqa: F403
from config.settings.generation import *  # noqa: F403
from config.settings.media import *  # noqa: F403
from config.settings.notifications import *  # noqa: F403
