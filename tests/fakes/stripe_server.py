"""A local stand-in for the parts of Stripe's API Conveyor calls, stdlib only. The
real SDK reaches it through STRIPE_API_BASE (over HTTPS given a server-side `ssl_context`,
whose CA the SDK is told to trust with STRIPE_CA_BUNDLE); it records every request (with its
Idempotency-Key) and answers as Stripe would, including idempotent replays.

    stripe = FakeStripe(api_key="sk_test_x").start()
    stripe.put_subscription("sub_1", customer="cus_1", status="active", price="price_pro")
    body = stripe.event("customer.subscription.updated", stripe.subscriptions["sub_1"])
    header = sign(body, "whsec_x")                    # Stripe-Signature, the real scheme
    stripe.fail_next(500, times=1)                    # the next request gets a 500
    stripe.requests_to("POST", "/v1/customers")       # what was sent
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    params: dict[str, Any]  # the form body or query, decoded into nested dicts and lists

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`: t=<ts>,v1=<HMAC-SHA256 of "t.payload">."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`line_items[0][price]=…`) back into nested values."""
    root: dict[str, Any] = {}
    for name, value in pairs:
        parts = re.findall(r"[^\[\]]+", name)
        node: Any = root
        for part, following in itertools.pairwise(parts):
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append({} if not following.isdigit() else [])
                node = node[index]
            else:
                node = node.setdefault(part, [] if following.isdigit() else {})
        last = parts[-1]
        if isinstance(node, list):
            node.append(value)
        else:
            node[last] = value
    return root


class FakeStripe:
    def __init__(
        self,
        *,
        api_key: str = "sk_test_fake",
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.api_key = api_key
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[Recorded] = []
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: list[dict[str, Any]] = []
        self._replays: dict[str, tuple[int, dict[str, Any]]] = {}
        self._failures: list[int] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                self._answer(*fake._handle("GET", url.path, self._headers(), parse_qsl(url.query)))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                path = urlsplit(self.path).path
                self._answer(*fake._handle("POST", path, self._headers(), parse_qsl(body)))

            def _headers(self) -> dict[str, str]:
                return {name.lower(): value for name, value in self.headers.items()}

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{next(fake._ids)}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        if ssl_context is not None:
            # Each accepted connection shakes hands before it is handled; one the client
            # refuses (an untrusted certificate) ends there, and the stand-in records nothing.
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        if self.ssl_context is None:
            return f"http://{host}:{port}"
        # A host name, as the client checks the certificate against it.
        return f"https://{'localhost' if host == '127.0.0.1' else host}:{port}"

    def start(self) -> FakeStripe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.customers.clear()
            self.subscriptions.clear()
            self.invoices.clear()
            self._replays.clear()
            self._failures.clear()

    # ------------------------------------------------------------ test controls

    def fail_next(self, status: int = 500, *, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def put_subscription(
        self,
        subscription_id: str,
        *,
        customer: str,
        status: str,
        price: str,
        period_end: int | None = None,
        cancel_at_period_end: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Set a subscription as Stripe would now describe it; returns its JSON."""
        period_end = period_end or int(time.time()) + 30 * 86400
        subscription = {
            "id": subscription_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": cancel_at_period_end,
            "created": int(time.time()),
            "metadata": metadata or {},
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{subscription_id}",
                        "object": "subscription_item",
                        "price": {"id": price, "object": "price"},
                        "current_period_end": period_end,
                    }
                ],
            },
        }
        with self._lock:
            self.subscriptions[subscription_id] = subscription
        return json.loads(json.dumps(subscription))

    def add_invoice(
        self, *, customer: str, subscription: str | None, amount: int, status: str
    ) -> dict[str, Any]:
        number = next(self._ids)
        invoice = {
            "id": f"in_{number}",
            "object": "invoice",
            "number": f"CONV-{number:04d}",
            "customer": customer,
            "status": status,
            "currency": "usd",
            "amount_due": amount,
            "amount_paid": amount if status == "paid" else 0,
            "created": int(time.time()) + number,  # newest last, so the list is newest first
            "hosted_invoice_url": f"https://invoice.stripe.test/i/in_{number}",
            "invoice_pdf": f"https://invoice.stripe.test/i/in_{number}/pdf",
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": subscription} if subscription else None,
            },
        }
        with self._lock:
            self.invoices.append(invoice)
        return json.loads(json.dumps(invoice))

    def event(
        self, type: str, obj: dict[str, Any], *, event_id: str | None = None, created: int | None = None
    ) -> bytes:
        """A webhook body for `obj`, as Stripe sends it."""
        body = {
            "id": event_id or f"evt_{next(self._ids)}",
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created or int(time.time()),
            "type": type,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }
        return json.dumps(body).encode()

    # ------------------------------------------------------------ the API

    def _handle(
        self, method: str, path: str, headers: dict[str, str], pairs: list[tuple[str, str]]
    ) -> tuple[int, dict[str, Any]]:
        params = decode_form(pairs)
        with self._lock:
            self.requests.append(Recorded(method, path, headers, params))
            if self._failures:
                return self._failures.pop(0), _error("api_error", "The stand-in was told to fail.")
            if headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, _error("invalid_request_error", "Invalid API Key provided.")
            key = headers.get("idempotency-key")
            if method == "POST" and key:
                replay = self._replays.get(key)
                if replay is not None and replay[1].get("_params") != params:
                    return 400, _error(
                        "idempotency_error", "Keys for idempotent requests can only be used once."
                    )
                if replay is not None:
                    return replay[0], {k: v for k, v in replay[1].items() if k != "_params"}
            status, body = self._route(method, path, params)
            if method == "POST" and key and status < 500:
                self._replays[key] = (status, {**body, "_params": params})
            return status, body

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        number = next(self._ids)
        if (method, path) == ("POST", "/v1/customers"):
            customer = {"id": f"cus_{number}", "object": "customer", **params}
            self.customers[customer["id"]] = customer
            return 200, customer
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            session_id = f"cs_test_{number}"
            return 200, {
                "id": session_id,
                "object": "checkout.session",
                "url": f"https://checkout.stripe.test/c/pay/{session_id}",
                "status": "open",
                "subscription": None,
                **params,
            }
        if (method, path) == ("POST", "/v1/billing_portal/sessions"):
            session_id = f"bps_{number}"
            return 200, {
                "id": session_id,
                "object": "billing_portal.session",
                "url": f"https://billing.stripe.test/p/session/{session_id}",
                **params,
            }
        if method == "GET" and path.startswith("/v1/subscriptions/"):
            subscription = self.subscriptions.get(path.rsplit("/", 1)[1])
            if subscription is None:
                return 404, _error("invalid_request_error", "No such subscription.", code="resource_missing")
            return 200, subscription
        if (method, path) == ("GET", "/v1/invoices"):
            mine = [i for i in self.invoices if i["customer"] == params.get("customer")]
            mine.sort(key=lambda invoice: invoice["created"], reverse=True)
            limit = int(params.get("limit", 10))
            return 200, {
                "object": "list",
                "url": "/v1/invoices",
                "has_more": len(mine) > limit,
                "data": mine[:limit],
            }
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method}: {path}).")


def _error(type: str, message: str, *, code: str | None = None) -> dict[str, Any]:
    return {"error": {"type": type, "message": message, **({"code": code} if code else {})}}
