"""moto's S3 in server mode (real HTTP) for storage tests.

moto checks neither the signature nor the expiry of a presigned (query-signed)
URL; real S3 checks both. A small WSGI layer in front of moto's app does what S3
does, so a test can see a link work, then stop working once it expires, and a
link altered by hand be refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import logging
import os
import threading
import uuid
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode_sequence
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from settings import Settings

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_DEFAULT_REGION": REGION,
}


class PresignedUrlCheck:
    """WSGI middleware: refuse an expired or badly signed presigned URL as S3 does (403)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        if "X-Amz-Signature" in query:
            problem = self.problem(environ, query)
            if problem:
                body = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    f"<Message>{problem}</Message></Error>"
                ).encode()
                start_response("403 Forbidden", [("Content-Type", "application/xml")])
                return [body]
        return self.app(environ, start_response)

    @staticmethod
    def problem(environ, query: dict[str, str]) -> str | None:
        try:
            signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
            expires = int(query["X-Amz-Expires"])
        except (KeyError, ValueError):
            return "Query-string authentication requires X-Amz-Date and X-Amz-Expires"
        if dt.datetime.now(dt.UTC) > signed_at + dt.timedelta(seconds=expires):
            return "Request has expired"
        host = environ["HTTP_HOST"]
        raw = urlsplit(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"])
        # SigV4 signs every query parameter but the signature itself, the X-Amz-* ones
        # included, encoded as AWS encodes them (percent_encode_sequence).
        signed = [
            pair for pair in parse_qsl(raw.query, keep_blank_values=True) if pair[0] != "X-Amz-Signature"
        ]
        url = f"http://{host}{raw.path}?{percent_encode_sequence(signed)}"
        request = AWSRequest(method=environ["REQUEST_METHOD"], url=url, headers={"host": host})
        request.context["timestamp"] = query["X-Amz-Date"]
        auth = S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=expires)
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            return "The request signature we calculated does not match the signature you provided"
        return None


class S3Server:
    """moto's WSGI app, behind PresignedUrlCheck, served by werkzeug from a daemon thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        # The storage code signs with the standard AWS variables, as in production.
        os.environ.update(CREDENTIALS)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        app = PresignedUrlCheck(DomainDispatcherApplication(create_backend_app))
        # Bound here, so requests are accepted (and queued) from the moment start returns.
        self._server = make_server(
            "127.0.0.1", self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-s3", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"conveyor-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, base: Settings, *, bucket: str | None = None, prefix: str = "") -> Settings:
        bucket = bucket or self.new_bucket()
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return dataclasses.replace(base, storage_url=url, s3_endpoint_url=self.endpoint_url)
