"""Storage in S3 or an S3-compatible store (MinIO, moto): `s3://bucket[/prefix]`.

Region and credentials come from boto3's usual sources (AWS_DEFAULT_REGION,
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance role…); S3_ENDPOINT_URL
points it at another store, and S3_PUBLIC_ENDPOINT_URL says where clients reach
that store when it is not at the same address (docker-compose: localhost, not minio).
"""

from __future__ import annotations

import logging

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from workers.storage.base import (
    ObjectNotFound,
    StorageError,
    check_key,
    check_prefix,
    check_ttl,
    safe_filename,
)

logger = logging.getLogger(__name__)

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


class S3Storage:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        session = boto3.session.Session()
        self.client = _client(session, endpoint_url)
        # SigV4 signs the Host, so a link must be made for the host clients use, not rewritten
        # afterwards. Presigning sends nothing: this client never makes a request.
        self.presigner = _client(session, public_endpoint_url) if public_endpoint_url else self.client
        self._bucket_checked = False

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._put(key, data, content_type)
        except ClientError as error:
            if _code(error) != "NoSuchBucket" or self._bucket_checked:
                raise StorageError(f"could not store {key}: {_code(error)}") from error
            # A fresh MinIO or local store: make the bucket once, then write.
            logger.warning("bucket %s does not exist; creating it", self.bucket)
            self._bucket_checked = True
            self._call(self.client.create_bucket, Bucket=self.bucket)
            self._call(self._put, key, data, content_type)
        except BotoCoreError as error:
            raise StorageError(f"could not store {key}: {error}") from error

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as error:
            if _code(error) in _MISSING:
                raise ObjectNotFound(key) from None
            raise StorageError(f"could not read {key}: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"could not read {key}: {error}") from error

    def delete(self, key: str) -> None:
        self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        full = self.prefix + check_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        deleted = 0
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                for start in range(0, len(keys), _DELETE_BATCH):
                    batch = keys[start : start + _DELETE_BATCH]
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                    deleted += len(batch)
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                return deleted
            raise StorageError(f"could not delete {prefix}: {_code(error)}") from error
        except BotoCoreError as error:
            raise StorageError(f"could not delete {prefix}: {error}") from error
        return deleted

    def presigned_url(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{safe_filename(filename)}"'
        return self.presigner.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=check_ttl(expires_in)
        )

    @staticmethod
    def _call(method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise StorageError(str(error)) from error


def _client(session: boto3.session.Session, endpoint_url: str | None):
    config = Config(
        signature_version="s3v4",
        # Path-style URLs work with every S3-compatible store and any bucket name.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
