"""AI providers behind one small interface (see base.py); `get_provider` picks one from settings."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from settings import PROVIDERS, ConfigError, Settings
from workers.providers.base import Provider
from workers.providers.offline import OfflineProvider

if TYPE_CHECKING:
    from workers.providers.openai_provider import OpenAIProvider


def get_provider(settings: Settings) -> Provider:
    if settings.ai_provider == "offline":
        return OfflineProvider()
    if settings.ai_provider == "openai":
        return _openai_provider(settings)
    raise ConfigError(f"AI_PROVIDER must be one of {', '.join(PROVIDERS)}; got {settings.ai_provider!r}")


@lru_cache(maxsize=8)
def _openai_provider(settings: Settings) -> OpenAIProvider:
    # One per settings: the SDK client holds a connection pool that jobs should share.
    # Imported here so the offline provider runs without loading the SDK.
    from workers.providers.openai_provider import OpenAIProvider

    return OpenAIProvider(settings)


def clear_provider_cache() -> None:
    """Drop cached clients, e.g. in a freshly forked worker so it opens its own connections."""
    _openai_provider.cache_clear()
