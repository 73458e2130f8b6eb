"""The provider's Files and Batches API, through the openai SDK's public methods."""

from __future__ import annotations

from typing import Any

import openai

from settings import Settings
from workers.batch_lane import COMPLETION_WINDOW, ENDPOINT


class BatchClient:
    """Upload a batch file, create, retrieve and cancel batches, read result files.
    The SDK retries a failed request twice: every step is safe to repeat on the next
    beat tick anyway, since nothing is recorded until the provider has answered."""

    def __init__(self, settings: Settings) -> None:
        self.client = openai.OpenAI(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url or None,
            timeout=openai.Timeout(
                settings.openai_timeout, connect=min(settings.openai_connect_timeout, settings.openai_timeout)
            ),
            max_retries=2,
        )

    def submit(self, jsonl: bytes, *, metadata: dict[str, str]) -> tuple[str, Any]:
        """Upload the file and create its batch: (input file id, the batch)."""
        uploaded = self.client.files.create(file=("conveyor-batch.jsonl", jsonl), purpose="batch")
        batch = self.client.batches.create(
            input_file_id=uploaded.id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata=metadata,
        )
        return uploaded.id, batch

    def retrieve(self, batch_id: str) -> Any:
        return self.client.batches.retrieve(batch_id)

    def cancel(self, batch_id: str) -> Any:
        return self.client.batches.cancel(batch_id)

    def lines(self, file_id: str | None) -> list[str]:
        if not file_id:
            return []
        return self.client.files.content(file_id).text.splitlines()
