"""What a model costs, in integer micro-dollars (millionths of a US dollar).

Prices are per million tokens, so a token costs the listed figure in micro-dollars.
"""

from __future__ import annotations

from settings import Settings

# model: (input, output) in micro-dollars per million tokens, i.e. $/1M tokens x 10^6.
PRICES: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (150_000, 600_000),
    "gpt-4o": (2_500_000, 10_000_000),
    "gpt-4.1-nano": (100_000, 400_000),
    "gpt-4.1-mini": (400_000, 1_600_000),
    "gpt-4.1": (2_000_000, 8_000_000),
    "offline": (0, 0),  # the offline provider calls no model
}


def allowed_models(settings: Settings) -> list[str]:
    """Models a job may ask for: the priced ones and the configured default
    (which may be a self-hosted model with no price)."""
    models = [name for name in PRICES if name != "offline"]
    if settings.default_model not in models:
        models.append(settings.default_model)
    return models


def price_of(model: str) -> tuple[int, int]:
    """Exact name first, then the longest priced prefix ("gpt-4o-mini-2024-07-18")."""
    if model in PRICES:
        return PRICES[model]
    prefixes = [name for name in PRICES if model.startswith(name)]
    return PRICES[max(prefixes, key=len)] if prefixes else (0, 0)


def cost_micros(model: str, input_tokens: int, output_tokens: int) -> int:
    price_in, price_out = price_of(model)
    total = input_tokens * price_in + output_tokens * price_out
    return -(-total // 1_000_000)  # round up: never bill less than a started micro-dollar
