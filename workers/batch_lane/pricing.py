"""What a call through the Batch API costs.

Half the standard price, as OpenAI sells its models through the Batch API. The model
catalogue's own `batch` price per model (issue 25) replaces this one function.
"""

from __future__ import annotations

from workers import pricing

BATCH_DISCOUNT = 2  # the batch price is the standard price divided by this


def batch_cost_micros(model: str, input_tokens: int, output_tokens: int) -> int:
    price_in, price_out = pricing.price_of(model)
    total = input_tokens * price_in + output_tokens * price_out
    return -(-total // (1_000_000 * BATCH_DISCOUNT))  # round up, as pricing.cost_micros does
