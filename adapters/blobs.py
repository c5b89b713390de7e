"""Blob storage: one interface, a local folder and an S3-compatible store.

Blobs are addressed by the SHA-256 of their bytes (lower-case hex), so the same bytes are
stored once however often they are put. Nothing is served from a public path: a reader gets a
short-lived signed URL — HMAC-signed by us for the local store (and checked by the route that
serves it, :meth:`LocalBlobs.verify`), presigned by S3 itself for the S3 store.

Writes stream from a file (:meth:`BlobStore.put_file`), hashing while they copy, so a large
photo never sits whole in memory. The S3 client (boto3) blocks, so its calls run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Protocol
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

CHUNK_BYTES: Final = 1024 * 1024
SHA256_HEX: Final = re.compile(r"^[0-9a-f]{64}$")


class BlobError(Exception):
    """The blob store failed or refused an operation."""


@dataclass(frozen=True)
class Stored:
    """A blob as put: its address, its size and whether this put created it."""

    sha256: str
    size_bytes: int
    created: bool


def sha256_of_file(file: IO[bytes]) -> tuple[str, int]:
    """The SHA-256 (hex) and size of ``file`` from its start, read in chunks; rewinds it."""
    file.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := file.read(CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
    file.seek(0)
    return digest.hexdigest(), size


class BlobStore(Protocol):
    """Where proof images live."""

    async def put_file(self, file: IO[bytes], content_type: str) -> Stored:
        """Store ``file`` (read from its start) under its SHA-256, once; the store may close
        the file when done."""
        ...

    async def put_bytes(self, data: bytes, content_type: str) -> Stored:
        """Store ``data`` under its SHA-256, once."""
        ...

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes; :class:`BlobError` when there is none."""
        ...

    async def exists(self, sha256: str) -> bool:
        """Whether the blob is stored."""
        ...

    def signed_url(self, sha256: str, content_type: str, ttl_s: int) -> str:
        """A URL that serves the blob for ``ttl_s`` seconds and then stops working."""
        ...


class LocalBlobs:
    """Blobs as files under ``root`` (``ab/cd/<sha256>``), served by our signed route."""

    def __init__(self, root: Path, signing_key: bytes, url_prefix: str = "/v1/blobs") -> None:
        self.root = root
        self._key = signing_key
        self.url_prefix = url_prefix.rstrip("/")

    def path_of(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (it may not exist)."""
        if not SHA256_HEX.match(sha256):
            raise BlobError(f"expected a SHA-256 in lower-case hex, got {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put_file(self, file: IO[bytes], content_type: str) -> Stored:
        return await asyncio.to_thread(self._put_file, file)

    def _put_file(self, file: IO[bytes]) -> Stored:
        self.root.mkdir(parents=True, exist_ok=True)
        file.seek(0)
        digest = hashlib.sha256()
        size = 0
        # Copy into a temporary file in the same folder, hashing as it goes, then rename it
        # to its address: a reader never sees half a blob, and two writers of one blob agree.
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".put-", delete=False) as out:
            try:
                while chunk := file.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            except BaseException:
                os.unlink(out.name)
                raise
        file.seek(0)
        sha256 = digest.hexdigest()
        target = self.path_of(sha256)
        if target.exists():
            os.unlink(out.name)
            return Stored(sha256, size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(out.name, target)
        return Stored(sha256, size, created=True)

    async def put_bytes(self, data: bytes, content_type: str) -> Stored:
        return await asyncio.to_thread(self._put_bytes, data)

    def _put_bytes(self, data: bytes) -> Stored:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path_of(sha256)
        if target.exists():
            return Stored(sha256, len(data), created=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".put-", delete=False) as out:
            out.write(data)
        os.replace(out.name, target)
        return Stored(sha256, len(data), created=True)

    async def read(self, sha256: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_of(sha256).read_bytes)
        except FileNotFoundError:
            raise BlobError(f"no blob {sha256}") from None

    async def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    def signed_url(self, sha256: str, content_type: str, ttl_s: int) -> str:
        expires = int(time.time()) + ttl_s
        query = urlencode(
            {
                "type": content_type,
                "expires": expires,
                "sig": self._sign(sha256, content_type, expires),
            }
        )
        return f"{self.url_prefix}/{sha256}?{query}"

    def verify(self, sha256: str, content_type: str, expires: int, sig: str, now: float) -> bool:
        """Whether a signed URL's parts are ours and it has not expired at ``now``."""
        if expires < now:
            return False
        return hmac.compare_digest(self._sign(sha256, content_type, expires), sig)

    def _sign(self, sha256: str, content_type: str, expires: int) -> str:
        message = f"{sha256}\n{content_type}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


class S3Blobs:
    """Blobs as objects ``<prefix><sha256>`` in an S3-compatible bucket, through boto3."""

    def __init__(self, client: Any, bucket: str, prefix: str = "blobs/") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    @classmethod
    def connect(
        cls,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> S3Blobs:
        """A store on ``bucket``; credentials unset: boto3's own chain (environment, profile)."""
        import boto3  # sessions and service models load for S3 deployments only
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )
        return cls(client, bucket)

    def _key(self, sha256: str) -> str:
        if not SHA256_HEX.match(sha256):
            raise BlobError(f"expected a SHA-256 in lower-case hex, got {sha256!r}")
        return self.prefix + sha256

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn`` in a thread (boto3 blocks); S3's refusals and outages as :class:`BlobError`."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"S3 could not {what}: {exc}") from None

    async def put_file(self, file: IO[bytes], content_type: str) -> Stored:
        sha256, size = await asyncio.to_thread(sha256_of_file, file)
        if await self.exists(sha256):
            return Stored(sha256, size, created=False)
        await self._call(
            f"store {sha256}",
            self._client.upload_fileobj,
            file,
            self.bucket,
            self._key(sha256),
            ExtraArgs={"ContentType": content_type},
        )
        # boto3's upload closes the file it was given: the caller must not read it again.
        return Stored(sha256, size, created=True)

    async def put_bytes(self, data: bytes, content_type: str) -> Stored:
        sha256 = hashlib.sha256(data).hexdigest()
        if await self.exists(sha256):
            return Stored(sha256, len(data), created=False)
        await self._call(
            f"store {sha256}",
            self._client.put_object,
            Bucket=self.bucket,
            Key=self._key(sha256),
            Body=data,
            ContentType=content_type,
        )
        return Stored(sha256, len(data), created=True)

    async def read(self, sha256: str) -> bytes:
        answer = await self._call(
            f"read {sha256}", self._client.get_object, Bucket=self.bucket, Key=self._key(sha256)
        )
        body: bytes = await self._call(f"read {sha256}", answer["Body"].read)
        return body

    async def exists(self, sha256: str) -> bool:
        try:
            await asyncio.to_thread(
                self._client.head_object, Bucket=self.bucket, Key=self._key(sha256)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise BlobError(f"S3 could not check {sha256}: {exc}") from None
        except BotoCoreError as exc:
            raise BlobError(f"S3 could not check {sha256}: {exc}") from None
        return True

    def signed_url(self, sha256: str, content_type: str, ttl_s: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(sha256),
                "ResponseContentType": content_type,
            },
            ExpiresIn=ttl_s,
        )
        return url


def local_signing_key(data_dir: Path, configured: str | None) -> bytes:
    """The local store's URL signing key: the configured one, else one kept in ``data_dir``
    (created once, readable by its owner only) so every process of one install agrees."""
    if configured:
        return configured.encode()
    path = data_dir / "blob-signing.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: two processes starting at once both end up
        # reading the one key that won, never a half-written file.
        fd, aside = tempfile.mkstemp(dir=data_dir, prefix=".key-")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
        finally:
            os.unlink(aside)
    return path.read_text().strip().encode()
