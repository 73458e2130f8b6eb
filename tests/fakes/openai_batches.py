"""The fake OpenAI server's Files and Batches endpoints (tests/fakes/openai_server.py).

Shapes as the real API's, closely enough for the openai SDK's `files.create`,
`files.content`, `batches.create`, `.retrieve` and `.cancel`: an input file of JSONL
lines `{custom_id, method, url, body}`; a batch moves validating → in_progress →
completed, and its output file (lines that answered 2xx) and error file (the rest) hold
lines `{id, custom_id, response: {status_code, request_id, body} | null, error}`.

What tests control:
- `finish_after`: seconds from creation until a batch completes when next retrieved;
  None holds every batch in progress until `finish()` is called.
- `failing_ids`: custom_ids whose line fails without an answer (`error` set,
  `response` null), as a request the provider could not run.
- the prompt markers of tests/fakes/openai_script.py, per line: `[[fail:400]]` gives
  that line a 400 response in the error file; `[[reply:...]]` sets its answer.
A batch's lines are answered once, when it completes, and kept in `lines` (the request
bodies), so a test can count what the batch lane sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from itertools import count
from typing import Any

from tests.fakes.openai_script import (
    ERRORS,
    Script,
    last_user_content,
    marker_content,
    reply_text,
    token_usage,
)

ENDPOINT = "/v1/chat/completions"
WINDOW_SECONDS = 24 * 3600


class BatchApiError(Exception):
    """An error the endpoint answers with: HTTP status and the API's error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


class BatchStore:
    """The files and batches of one fake server; every method is thread-safe."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._lock = threading.Lock()
        self._ids = count(1)
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.lines: list[dict[str, Any]] = []  # each answered line's request body
        self.finish_after: float | None = 0.0
        self.failing_ids: set[str] = set()
        self._due: set[str] = set()  # batches `finish()` released

    def reset(self) -> None:
        with self._lock:
            self.files.clear()
            self.batches.clear()
            self.lines.clear()
            self.finish_after = 0.0
            self.failing_ids = set()
            self._due.clear()

    # -- what tests call ------------------------------------------------------

    def finish(self, batch_id: str | None = None) -> None:
        """Let one batch (or every batch) complete when next retrieved."""
        with self._lock:
            self._due.update([batch_id] if batch_id else self.batches)

    def created(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(batch) for batch in self.batches.values()]

    # -- endpoints ------------------------------------------------------------

    def upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        fields = _multipart(content_type, raw)
        if "file" not in fields:
            raise BatchApiError(400, "No file was uploaded", param="file")
        if fields.get("purpose", (None, b""))[1].decode() != "batch":
            raise BatchApiError(400, "This fake accepts only purpose=batch", param="purpose")
        filename, data = fields["file"]
        stored = self._store_file(filename or "upload.jsonl", "batch", data)
        return stored.as_json()

    def file(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self.files.get(file_id)
        if stored is None:
            raise BatchApiError(404, f"No such File object: {file_id}", param="id")
        return stored

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        input_file_id = body.get("input_file_id")
        if body.get("endpoint") != ENDPOINT:
            raise BatchApiError(400, f"This fake serves batches of {ENDPOINT} only", param="endpoint")
        if body.get("completion_window") != "24h":
            raise BatchApiError(400, "completion_window must be 24h", param="completion_window")
        source = self.file(str(input_file_id))
        if source.purpose != "batch":
            raise BatchApiError(400, "The input file's purpose must be batch", param="input_file_id")
        now = int(time.time())
        with self._lock:
            batch_id = f"batch_fake{next(self._ids)}"
            batch = {
                "id": batch_id,
                "object": "batch",
                "endpoint": ENDPOINT,
                "errors": None,
                "input_file_id": source.id,
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "created_at": now,
                "in_progress_at": None,
                "expires_at": now + WINDOW_SECONDS,
                "finalizing_at": None,
                "completed_at": None,
                "failed_at": None,
                "expired_at": None,
                "cancelling_at": None,
                "cancelled_at": None,
                "request_counts": {"total": 0, "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
                "model": None,
            }
            self.batches[batch_id] = batch
            return dict(batch)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id)
            self._advance(batch)
            return dict(batch)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self._batch(batch_id)
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
            elif batch["status"] != "cancelling":
                raise BatchApiError(400, f"Cannot cancel a batch that is {batch['status']}")
            return dict(batch)

    # -- inside ---------------------------------------------------------------

    def _batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise BatchApiError(404, f"No batch found with id '{batch_id}'", param="batch_id")
        return batch

    def _advance(self, batch: dict[str, Any]) -> None:
        """Move the batch on as time (or `finish`) allows; called with the lock held."""
        now = int(time.time())
        if batch["status"] == "cancelling":  # nothing was answered yet: nothing to keep
            batch["status"], batch["cancelled_at"] = "cancelled", now
            return
        if batch["status"] == "validating":
            requests, problem = _parse_input(self.files[batch["input_file_id"]].data)
            if problem is not None:
                batch["status"], batch["failed_at"] = "failed", now
                batch["errors"] = {"object": "list", "data": [problem]}
                return
            batch["status"], batch["in_progress_at"] = "in_progress", now
            batch["request_counts"]["total"] = len(requests)
        if batch["status"] != "in_progress" or not self._is_due(batch, now):
            return
        requests, _ = _parse_input(self.files[batch["input_file_id"]].data)
        answered, failed = [], []
        for line in requests:
            self.lines.append(line["body"])
            out = self._answer(batch["id"], line)
            (answered if out["error"] is None and out["response"]["status_code"] < 300 else failed).append(
                out
            )
        batch["status"], batch["finalizing_at"], batch["completed_at"] = "completed", now, now
        batch["request_counts"] = {"total": len(requests), "completed": len(answered), "failed": len(failed)}
        batch["model"] = requests[0]["body"].get("model") if requests else None
        if answered:
            batch["output_file_id"] = self._put_lines("batch_output.jsonl", answered).id
        if failed:
            batch["error_file_id"] = self._put_lines("batch_errors.jsonl", failed).id

    def _is_due(self, batch: dict[str, Any], now: int) -> bool:
        if batch["id"] in self._due:
            return True
        return self.finish_after is not None and now >= batch["created_at"] + self.finish_after

    def _answer(self, batch_id: str, line: dict[str, Any]) -> dict[str, Any]:
        custom_id, body = line["custom_id"], line["body"]
        out: dict[str, Any] = {"id": f"batch_req_{batch_id}_{custom_id}", "custom_id": custom_id}
        if custom_id in self.failing_ids:
            error = {"code": "server_error", "message": "The request could not be run (fake failure)."}
            return out | {"response": None, "error": error}
        messages = body.get("messages") or []
        behaviour = self.script.behaviour(marker_content(messages))
        request_id = f"req_fake_{batch_id}_{custom_id}"
        if behaviour.fail is not None:
            status, error = ERRORS.get(behaviour.fail, (500, {"message": f"Fake error {behaviour.fail}"}))
            error = {"type": "error", "param": None, "code": None} | error
            response = {"status_code": status, "request_id": request_id, "body": {"error": error}}
            return out | {"response": response, "error": None}
        text = reply_text(body, last_user_content(messages), behaviour)
        message = {"role": "assistant", "content": text, "refusal": None}
        completion = {
            "id": f"chatcmpl-{batch_id}-{custom_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or "fake-model",
            "choices": [
                {"index": 0, "message": message, "finish_reason": behaviour.finish, "logprobs": None}
            ],
            "usage": token_usage(messages, text),
            "system_fingerprint": "fp_fake",
        }
        return out | {
            "response": {"status_code": 200, "request_id": request_id, "body": completion},
            "error": None,
        }

    def _store_file(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        with self._lock:
            return self._put(filename, purpose, data)

    def _put_lines(self, filename: str, lines: list[dict[str, Any]]) -> StoredFile:
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self._put(filename, "batch_output", data)

    def _put(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(f"file-fake{next(self._ids)}", filename, purpose, data)
        self.files[stored.id] = stored
        return stored


def _parse_input(data: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The input file's requests, or the first problem as the API's BatchError."""
    requests, seen = [], set()
    for number, text in enumerate(data.decode().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except ValueError:
            return [], {"code": "invalid_json_line", "line": number, "message": "Not JSON", "param": None}
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
            return [], {"code": "invalid_request", "line": number, "message": "No body", "param": "body"}
        if line.get("method") != "POST" or line.get("url") != ENDPOINT:
            message = f"Each line must POST to {ENDPOINT}"
            return [], {"code": "invalid_url", "line": number, "message": message, "param": "url"}
        if not line.get("custom_id") or line["custom_id"] in seen:
            message = "custom_id must be set and unique"
            return [], {
                "code": "duplicate_custom_id",
                "line": number,
                "message": message,
                "param": "custom_id",
            }
        seen.add(line["custom_id"])
        requests.append(line)
    if not requests:
        return [], {"code": "empty_file", "line": None, "message": "The input file is empty", "param": None}
    return requests, None


def _multipart(content_type: str, raw: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name → (filename, bytes)."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields
