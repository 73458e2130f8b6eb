"""An OpenAI-compatible chat completions server for the benchmark, on asyncio.

tests/fakes/openai_server.py runs a thread per connection and its `[[slow:…]]` marker
pauses before every streamed piece; the benchmark needs a thousand calls held at once
for a fixed total latency, and to know how many were held at once. So this one:

- answers `POST /v1/chat/completions` (streamed or not) after `latency` seconds, the
  whole reply at once;
- counts requests in flight and remembers the peak, and counts the connections its
  clients opened (`GET /stats`, `POST /reset`);
- records how long each request took, keyed by the `bench-…` tag in its prompt, so
  the overhead scenario can subtract provider time per job;
- echoes the prompt (200 characters of it) in pieces of four words, or, for a prompt
  with `[[tokens:N]]`, streams N one-word pieces, as OpenAI streams a token a chunk;
- for a prompt with `[[first-token:S]]`, sends the first piece of text on its own,
  notes when it went (wall-clock time, keyed by the tag: `first_sent` in the stats),
  and the rest S seconds later: the stream scenario times that piece to an SSE client.

    python -m bench.fake_provider --port 8090 --latency 1.0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import time
from itertools import count
from typing import Any

TAG = re.compile(r"bench-[\w-]+")
TOKENS = re.compile(r"\[\[tokens:(\d+)\]\]")
FIRST_TOKEN = re.compile(r"\[\[first-token:([\d.]+)\]\]")
MAX_TIMINGS = 100_000


class Stats:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.reset()

    def reset(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.requests = 0
        self.connections = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.timings: dict[str, float] = {}
        self.first_sent: dict[str, float] = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak,
            "requests": self.requests,
            "connections": self.connections,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "timings": self.timings,
            "first_sent": self.first_sent,
        }


class Server:
    def __init__(self, latency: float) -> None:
        self.stats = Stats(latency)
        self._ids = count(1)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                keep_alive = headers.get("connection", "").lower() != "close"
                await self.route(writer, method, path.split("?", 1)[0], body)
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def route(self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.rstrip("/") == "/v1/chat/completions":
            await self.complete(writer, json.loads(body or b"{}"))
        elif method == "GET" and path == "/stats":
            await self.send_json(writer, 200, self.stats.as_dict())
        elif method == "POST" and path == "/reset":
            latency = json.loads(body or b"{}").get("latency")
            self.stats.reset()
            if latency is not None:
                self.stats.latency = float(latency)
            await self.send_json(writer, 200, {"ok": True})
        else:
            await self.send_json(writer, 404, {"error": {"message": f"Unknown path {path}"}})

    async def complete(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        stats = self.stats
        started = time.monotonic()
        stats.requests += 1
        stats.in_flight += 1
        stats.peak = max(stats.peak, stats.in_flight)
        stats.first_at = stats.first_at or time.time()
        prompt = ""
        try:
            if stats.latency > 0:
                await asyncio.sleep(stats.latency)
            prompt = _last_user_text(body.get("messages") or [])
            text = _reply(body, prompt)
            prompt_tokens = max(1, sum(len(_text(m.get("content"))) for m in body["messages"]) // 4)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": max(1, len(text) // 4),
                "total_tokens": prompt_tokens + max(1, len(text) // 4),
            }
            envelope = {
                "id": f"chatcmpl-bench{next(self._ids)}",
                "created": int(time.time()),
                "model": body.get("model") or "bench-model",
                "system_fingerprint": "fp_bench",
            }
            if body.get("stream"):
                pause = FIRST_TOKEN.search(prompt)
                tag = TAG.search(prompt)
                first = (tag.group(0), float(pause.group(1))) if pause and tag else None
                await self.stream(writer, envelope, text, usage, first=first)
            else:
                message = {"role": "assistant", "content": text, "refusal": None}
                choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
                payload = envelope | {"object": "chat.completion", "choices": [choice], "usage": usage}
                await self.send_json(writer, 200, payload)
        finally:
            stats.in_flight -= 1
            stats.last_at = time.time()
            match = TAG.search(prompt)
            if match and len(stats.timings) < MAX_TIMINGS:
                stats.timings[match.group(0)] = time.monotonic() - started

    async def stream(
        self,
        writer: asyncio.StreamWriter,
        envelope: dict[str, Any],
        text: str,
        usage: dict[str, int],
        *,
        first: tuple[str, float] | None = None,
    ) -> None:
        """The answer as a chunked event stream, all at once; with `first` (a tag and a
        pause), its first piece of text alone, noted as sent, and the rest after the pause."""
        chunk = envelope | {"object": "chat.completion.chunk", "usage": None}

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return b"data: " + json.dumps(chunk | {"choices": [choice]}).encode() + b"\n\n"

        words = text.split(" ")
        size = 1 if TOKENS.search(text) else 4
        pieces = [" ".join(words[i : i + size]) + " " for i in range(0, len(words), size)]
        events = [event({"role": "assistant", "content": "", "refusal": None})]
        events += [event({"content": piece}) for piece in pieces]
        events.append(event({}, "stop"))
        events.append(b"data: " + json.dumps(chunk | {"choices": [], "usage": usage}).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        framed = [f"{len(e):x}\r\n".encode() + e + b"\r\n" for e in events] + [b"0\r\n\r\n"]
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
            "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        if first is not None:
            tag, pause = first
            writer.write(head.encode() + framed[0] + framed[1])  # the role, then the first text
            await writer.drain()
            self.stats.first_sent[tag] = time.time()
            await asyncio.sleep(pause)
            head, framed = "", framed[2:]
        writer.write(head.encode() + b"".join(framed))
        await writer.drain()

    async def send_json(self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nx-request-id: req_bench\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _reply(body: dict[str, Any], prompt: str) -> str:
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        from workers.providers.schema_sample import sample_instance

        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return json.dumps(sample_instance(schema))
    tokens = TOKENS.search(prompt)
    if tokens:
        return " ".join(["Echo:", tokens.group(0), *(f"w{i}" for i in range(int(tokens.group(1))))])
    return "Echo: " + prompt[:200]


async def serve(host: str, port: int, latency: float) -> None:
    server = Server(latency)
    listener = await asyncio.start_server(server.handle, host, port, backlog=4096, limit=1 << 20)
    print(f"fake provider on http://{host}:{port}/v1 latency={latency}", flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="The benchmark's OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()
