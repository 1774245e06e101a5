"""Notification and data-export settings (notifications/, accounts/)."""

from config.env import env_int

# A finished or failed generation is mailed when its page was not polled within
# NOTIFY_WATCH_GRACE_SECONDS of the end (the tab is closed), or when it ran longer than
# NOTIFY_LONG_JOB_SECONDS (the user has likely looked away).
NOTIFY_WATCH_GRACE_SECONDS = env_int("NOTIFY_WATCH_GRACE_SECONDS", 15, minimum=2)
NOTIFY_LONG_JOB_SECONDS = env_int("NOTIFY_LONG_JOB_SECONDS", 120, minimum=1)
# A send claimed this long ago without finishing is taken to have died and is tried again.
NOTIFY_CLAIM_TIMEOUT_SECONDS = env_int("NOTIFY_CLAIM_TIMEOUT_SECONDS", 600, minimum=60)
# A data export stays downloadable this long, then its object is deleted.
EXPORT_RETENTION_HOURS = env_int("EXPORT_RETENTION_HOURS", 72, minimum=1)
