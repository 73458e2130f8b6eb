"""The `openai` provider: OpenAI, or any OpenAI-compatible server, through the openai SDK.

The SDK's own retries are off (`max_retries=0`): tenacity below is the one retry
policy, so attempts, backoff and logging are decided in one place.

The call goes through the client's documented low-level `post` rather than
`chat.completions.create`, asking for the raw HTTP response: the typed path walks our
parameters through its TypedDict transform and builds a pydantic model per chunk, work
nothing here reads, and a streamed answer pays it for every token. The request,
auth headers, timeouts and HTTP status errors are still the SDK's, and so are the
errors a stream can end with; its body is read by chunks.py. The HTTP transport reads
a streamed body's end after `[DONE]`, so the connection is pooled for the next call
(pooling.py).
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base, wait_random_exponential

from settings import Settings
from workers import catalogue, metrics
from workers.provider_limits import LocalRateLimited, RateLimiter, request_tokens
from workers.providers.base import (
    CONTENT_FILTERED,
    INVALID_REQUEST,
    PROVIDER_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    Canceled,
    Completion,
    CompletionRequest,
    OnDelta,
    ProviderError,
    estimate_tokens,
)
from workers.providers.chunks import chunks
from workers.providers.interrupts import Interrupted
from workers.providers.pooling import PoolingTransport

logger = logging.getLogger(__name__)


CHAT_COMPLETIONS = "/chat/completions"
_BEARER_AUTH: Any = {"security": {"bearer_auth": True}}  # what chat.completions.create asks for

MALFORMED = "The AI provider sent a response that could not be read"
REASON_LENGTH = 160
CONTENT_POLICY = re.compile(r"content (management )?polic|safety system", re.IGNORECASE)
SECRET_LIKE = re.compile(r"\b(sk|key|token)-[A-Za-z0-9_\-*.]{6,}", re.IGNORECASE)


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep  # tests pass a recorder to see the waits the retry policy chose
        self.catalogue = catalogue.get_catalogue(settings)
        # One client per endpoint (each its own connection pool): OPENAI_BASE_URL's, and
        # each OpenAI-compatible server the catalogue names.
        self.clients: dict[str, openai.OpenAI] = {
            catalogue.OPENAI: self._client(settings.openai_base_url, settings.openai_api_key)
        }
        for endpoint in self.catalogue.endpoints.values():
            self.clients[endpoint.name] = self._client(endpoint.base_url, endpoint.api_key)
        self.limiter = RateLimiter.from_settings(settings)  # None: no PROVIDER_RATE_LIMITS
        self._retrying = retry_policy(settings, sleep=sleep)

    def _client(self, base_url: str, api_key: str) -> openai.OpenAI:
        settings = self.settings
        return openai.OpenAI(
            api_key=api_key,
            base_url=base_url or None,
            # A provider that cannot be reached is found out in seconds, not a whole read's
            # wait: each attempt's connect is bounded on its own (the SDK's default is 5 s).
            timeout=openai.Timeout(
                settings.openai_timeout, connect=min(settings.openai_connect_timeout, settings.openai_timeout)
            ),
            max_retries=0,
            # Connections go back to the pool after a streamed answer (see pooling.py).
            http_client=openai.DefaultHttpxClient(transport=PoolingTransport()),
        )

    def complete(self, request: CompletionRequest, on_delta: OnDelta | None = None) -> Completion:
        return self._retrying(self._attempt, request, on_delta)

    def _attempt(self, request: CompletionRequest, on_delta: OnDelta | None) -> Completion:
        if self.limiter is not None:
            # Per attempt, since every HTTP request counts against the provider's limits.
            self.limiter.acquire(request.model, request_tokens(request))
        state = _StreamState(request)
        with metrics.provider_request(self.name, request.model):
            try:
                return self._request(request, state, on_delta)
            except Interrupted as stop:
                # The job was canceled while this call waited on the network: for the
                # response, or for its next piece (see interrupts.py). A request that never
                # went out costs nothing.
                raise Canceled(state.completion() if stop.sent else Completion("", request.model)) from None

    def _request(
        self, request: CompletionRequest, state: _StreamState, on_delta: OnDelta | None
    ) -> Completion:
        kwargs = chat_body(request, stream=True)
        options = _BEARER_AUTH
        if request.service_tier is not None:
            # A flex call may queue at the provider: OpenAI asks for a longer timeout.
            connect = min(self.settings.openai_connect_timeout, self.settings.flex_timeout)
            options = {**_BEARER_AUTH, "timeout": openai.Timeout(self.settings.flex_timeout, connect=connect)}
        endpoint = self.catalogue.provider_of(request.model)
        try:
            # The raw HTTP response, its status already checked by the SDK (an error
            # status raises the SDK's error); its body is read by chunks.py.
            response = self.clients[endpoint].post(
                CHAT_COMPLETIONS, body=kwargs, cast_to=httpx2.Response, stream=True, options=options
            )
        except openai.OpenAIError as err:
            raise self._error(err, request) from err

        # Close the HTTP response however we leave, so a cancel hangs up on the provider.
        to_error = functools.partial(self._error, request=request)
        deltas = _text_deltas(response, state, to_error)
        with contextlib.closing(response), contextlib.closing(deltas):
            try:
                for text in deltas:
                    state.parts.append(text)
                    if on_delta is not None:
                        try:
                            on_delta(text)
                        except Canceled:
                            raise Canceled(state.completion()) from None
            except ProviderError as error:
                if state.parts:
                    # Text already reached the client: a retry would send it twice.
                    error.partial = state.completion()
                raise
        if state.chunks == 0:
            raise ProviderError(PROVIDER_ERROR, "The AI provider sent an empty response", transient=True)
        if state.finish_reason == "content_filter":
            raise ProviderError(
                CONTENT_FILTERED,
                "The AI provider stopped the answer under its content policy",
                partial=state.completion() if state.parts else None,
            )
        if state.refusal and not state.parts:
            raise ProviderError(CONTENT_FILTERED, "The AI model declined to answer this request")
        return state.completion()

    def _error(self, err: Exception, request: CompletionRequest) -> ProviderError:
        endpoint = self.catalogue.endpoint(request.model)
        secret = endpoint.api_key if endpoint is not None else self.settings.openai_api_key
        error = map_error(err, secret=secret)
        if request.service_tier == catalogue.FLEX and _is_resource_unavailable(err):
            error.flex_unavailable = True
        return error


def chat_body(request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
    """The chat completion request's JSON body: streamed by a worker, or not as each
    line of the batch lane's file (the Batch API does not stream)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        # `max_tokens`, not `max_completion_tokens`: vLLM, Ollama and older servers only know this one.
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.json_schema, "strict": False},
        }
    if request.service_tier is not None:  # flex (workers/lanes.py)
        body["service_tier"] = request.service_tier
    return body


@dataclass
class _StreamState:
    request: CompletionRequest
    parts: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    model: str = ""
    finish_reason: str | None = None
    usage: Any = None
    chunks: int = 0

    def completion(self) -> Completion:
        text = "".join(self.parts)
        usage = self.usage
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            input_tokens, output_tokens = usage["prompt_tokens"], usage.get("completion_tokens") or 0
        else:
            input_tokens = sum(estimate_tokens(str(m.get("content") or "")) for m in self.request.messages)
            output_tokens = estimate_tokens(text)
        return Completion(
            text=text,
            model=self.model or self.request.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=self.finish_reason,
            lane=self.request.service_tier or catalogue.STANDARD,
        )


def _text_deltas(
    response: httpx2.Response, state: _StreamState, to_error: Callable[[Exception], ProviderError]
) -> Iterator[str]:
    """Yield the non-empty text deltas of choice 0, recording the rest of the stream in `state`.

    Each chunk is the API's JSON object (`chat.completion.chunk`). Errors from the SDK
    or from chunks that are not what the API promises become ProviderErrors here;
    errors raised by whoever consumes the deltas pass through.
    """
    try:
        for chunk in chunks(response):
            state.chunks += 1
            if not state.model:  # every chunk names the model: the first one's is kept
                state.model = chunk.get("model") or ""
            if (usage := chunk.get("usage")) is not None:
                state.usage = usage
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                if finish_reason := choice.get("finish_reason"):
                    state.finish_reason = finish_reason
                delta = choice.get("delta")
                if delta is None:
                    continue
                if delta.get("refusal"):
                    state.refusal.append(delta["refusal"])
                if content := delta.get("content"):
                    if type(content) is not str:
                        raise TypeError(f"delta content is {type(content).__name__}")
                    yield content
    except openai.OpenAIError as err:
        raise to_error(err) from err
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # bad JSON, chunks of the wrong shape
        raise ProviderError(PROVIDER_ERROR, MALFORMED, transient=True) from err


def map_error(err: Exception, *, secret: str = "") -> ProviderError:
    """Turn an SDK exception into a ProviderError whose message is safe to show an API client."""
    if isinstance(err, openai.APITimeoutError):
        return ProviderError(TIMEOUT, "The AI provider did not answer in time", transient=True)
    if isinstance(err, openai.APIConnectionError):
        return ProviderError(PROVIDER_ERROR, "Could not connect to the AI provider", transient=True)
    if isinstance(err, openai.APIResponseValidationError):
        return ProviderError(PROVIDER_ERROR, MALFORMED, transient=True)
    if isinstance(err, openai.APIStatusError):
        return _map_status_error(err, secret)
    if isinstance(err, openai.APIError):  # an error event in the middle of a stream
        if _is_content_policy(err):
            return ProviderError(
                CONTENT_FILTERED, "The AI provider refused the request under its content policy"
            )
        return ProviderError(PROVIDER_ERROR, "The AI provider failed while answering", transient=True)
    return ProviderError(PROVIDER_ERROR, "The AI provider call failed")


def _map_status_error(err: openai.APIStatusError, secret: str) -> ProviderError:
    status = err.status_code
    if status == 429:
        if "insufficient_quota" in (err.code, err.type):
            return ProviderError(PROVIDER_ERROR, "The AI provider account is out of quota")
        return ProviderError(
            RATE_LIMITED,
            "The AI provider is rate limiting requests; try again later",
            transient=True,
            retry_after=parse_retry_after(err.response.headers),
        )
    if status >= 500:
        return ProviderError(
            PROVIDER_ERROR, f"The AI provider had a server error (HTTP {status})", transient=True
        )
    if status in (401, 403):
        return ProviderError(PROVIDER_ERROR, f"The AI provider rejected our credentials (HTTP {status})")
    if status == 408:
        return ProviderError(TIMEOUT, "The AI provider did not answer in time", transient=True)
    if status == 409:  # OpenAI's "resource busy": safe to try again
        return ProviderError(PROVIDER_ERROR, "The AI provider was busy (HTTP 409)", transient=True)
    if status == 400 and _is_content_policy(err):
        return ProviderError(CONTENT_FILTERED, "The AI provider refused the request under its content policy")
    if status in (400, 404, 413, 422):
        reason = _short_reason(err, secret)
        message = "The AI provider rejected the request" + (f": {reason}" if reason else "")
        return ProviderError(INVALID_REQUEST, message)
    return ProviderError(PROVIDER_ERROR, f"The AI provider refused the request (HTTP {status})")


def _is_resource_unavailable(err: Exception) -> bool:
    """OpenAI's answer to a flex call it has no room for: 429 "Resource Unavailable"."""
    if not isinstance(err, openai.APIStatusError) or err.status_code != 429:
        return False
    if err.code == "resource_unavailable":
        return True
    message = err.body.get("message") if isinstance(err.body, Mapping) else None
    return isinstance(message, str) and "resource unavailable" in message.lower()


def _is_content_policy(err: openai.APIError) -> bool:
    if err.code in ("content_filter", "content_policy_violation"):
        return True
    message = err.body.get("message") if isinstance(err.body, Mapping) else None
    return isinstance(message, str) and bool(CONTENT_POLICY.search(message))


def _short_reason(err: openai.APIError, secret: str) -> str:
    """The provider's own message, trimmed and scrubbed of anything that looks like a key."""
    message = err.body.get("message") if isinstance(err.body, Mapping) else None
    if not isinstance(message, str):
        return ""
    if secret:
        message = message.replace(secret, "[redacted]")
    message = SECRET_LIKE.sub("[redacted]", " ".join(message.split()))
    if len(message) > REASON_LENGTH:
        message = message[: REASON_LENGTH - 1].rstrip() + "…"
    return message


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the provider asked us to wait: `retry-after-ms`, or `Retry-After` in seconds or as a date."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class wait_retry_after(wait_base):  # lower case like tenacity's own waits
    """Back off as `fallback` says, but at least as long as the provider asked (up to `cap`)."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self.fallback(retry_state)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        asked = getattr(error, "retry_after", None)
        if asked is None:
            return backoff
        return max(backoff, min(asked, self.cap))


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, LocalRateLimited):  # it already waited its fill; no attempt was made
        return False
    if isinstance(error, ProviderError) and error.flex_unavailable:
        return False  # the job's lane decides how long to wait for room (workers/lanes.py)
    return isinstance(error, ProviderError) and error.transient and error.partial is None


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    logger.warning(
        "AI provider call failed, retrying: code=%s attempt=%d wait=%.2fs message=%s",
        getattr(error, "code", "?"),
        retry_state.attempt_number,
        retry_state.upcoming_sleep,
        getattr(error, "message", error),
    )


def retry_policy(settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """Retry transient ProviderErrors with backoff; the last error propagates. Built once
    per provider and shared by its calls: tenacity keeps a call's state in a thread-local
    (a greenlet-local under gevent), and making one per call, local included, is work
    every job would repeat for nothing."""
    return Retrying(
        retry=retry_if_exception(_is_retryable),
        stop=stop_after_attempt(settings.provider_max_attempts),
        wait=wait_retry_after(
            wait_random_exponential(
                multiplier=settings.provider_backoff_base, max=settings.provider_backoff_max
            ),
            cap=settings.provider_backoff_max,
        ),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
