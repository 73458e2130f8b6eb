"""Flower's settings, read by the Procfile's `flower` line (`--conf=flowerconfig.py`).

Flower always asks for a password: FLOWER_BASIC_AUTH (`user:password`, comma-separated
for several), or in development only the documented `admin:admin`. Outside
development it refuses to start without one, and production refuses short or
well-known passwords (settings.Settings.flower_users). Other options stay on the
command line, or in FLOWER_* variables, which Flower reads itself.
"""

from settings import ConfigError, get_settings

try:
    basic_auth = get_settings().flower_users()
except ConfigError as problem:
    raise SystemExit(f"error: Flower cannot start: {problem}") from None
