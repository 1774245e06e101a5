"""Media settings: what ingest accepts, thumbnails and the orphan sweep (media_store/)."""

from config.env import env_int, env_list

# Ingest limits: a download larger, slower or more redirected than this is refused.
INGEST_MAX_BYTES = env_int("INGEST_MAX_BYTES", 100 * 1024 * 1024, minimum=1)
INGEST_MAX_REDIRECTS = env_int("INGEST_MAX_REDIRECTS", 5, minimum=0)
INGEST_CONNECT_TIMEOUT_SECONDS = env_int("INGEST_CONNECT_TIMEOUT_SECONDS", 5, minimum=1)
INGEST_READ_TIMEOUT_SECONDS = env_int("INGEST_READ_TIMEOUT_SECONDS", 30, minimum=1)
INGEST_TOTAL_TIMEOUT_SECONDS = env_int("INGEST_TOTAL_TIMEOUT_SECONDS", 120, minimum=1)
INGEST_MAX_IMAGE_PIXELS = env_int("INGEST_MAX_IMAGE_PIXELS", 64_000_000, minimum=1)
# Output hosts, named exactly, that may resolve to private addresses: your own GPU box on an
# internal network. Production allows this; it never allows private addresses wholesale
# (INGEST_ALLOW_PRIVATE_HOSTS is a development switch). Each must also be a provider output host.
INGEST_INTERNAL_HOSTS = [host.lower().rstrip(".") for host in env_list("INGEST_INTERNAL_HOSTS", [])]
MEDIA_THUMBNAIL_PIXELS = env_int("MEDIA_THUMBNAIL_PIXELS", 512, minimum=16)
# An object with no asset row older than this is a crashed ingest's leftover (an ingest takes at
# most INGEST_TOTAL_TIMEOUT_SECONDS plus its upload); the daily sweep deletes it.
MEDIA_ORPHAN_GRACE_SECONDS = env_int(
    "MEDIA_ORPHAN_GRACE_SECONDS", 60 * 60, minimum=INGEST_TOTAL_TIMEOUT_SECONDS + 60
)
