"""The blob stores: the local folder and an S3-compatible store (moto's server, running here)."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from adapters.blobs import BlobError, LocalBlobs, S3Blobs, local_signing_key
from tests.adapters.peers import free_port

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4000  # bytes standing in for a photo


@pytest.fixture
def local(tmp_path: Path) -> LocalBlobs:
    return LocalBlobs(tmp_path / "blobs", local_signing_key(tmp_path, None))


@contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on a free local port, running inside the block: its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free local port, for this module."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str) -> S3Blobs:
    bucket = f"proofs-{time.monotonic_ns()}"
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **credentials)
    client.create_bucket(Bucket=bucket)
    return S3Blobs.connect(
        bucket,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
    )


async def test_local_store_keeps_one_copy_per_content(local: LocalBlobs) -> None:
    """The same bytes put twice are stored once, under their SHA-256, and read back whole."""
    first = await local.put_bytes(PHOTO, "image/jpeg")
    again = await local.put_file(io.BytesIO(PHOTO), "image/jpeg")
    assert first.sha256 == again.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert (first.created, again.created) == (True, False)
    assert await local.read(first.sha256) == PHOTO
    files = [p for p in local.root.rglob("*") if p.is_file()]
    assert files == [local.path_of(first.sha256)]


async def test_local_store_streams_a_file_and_hashes_while_copying(local: LocalBlobs) -> None:
    """A file larger than one chunk is copied and addressed by the hash of all its bytes."""
    data = PHOTO * 3
    stored = await local.put_file(io.BytesIO(data), "image/jpeg")
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size_bytes == len(data)
    assert await local.exists(stored.sha256)


async def test_local_signed_urls_expire_and_refuse_tampering(local: LocalBlobs) -> None:
    """A signed URL verifies until it expires; another blob, type or signature does not."""
    stored = await local.put_bytes(PHOTO, "image/jpeg")
    url = local.signed_url(stored.sha256, "image/jpeg", ttl_s=60)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.path == f"/v1/blobs/{stored.sha256}"
    expires, sig = int(query["expires"]), query["sig"]
    now = time.time()
    assert local.verify(stored.sha256, "image/jpeg", expires, sig, now)
    assert not local.verify(stored.sha256, "image/jpeg", expires, sig, expires + 1)
    assert not local.verify(stored.sha256, "image/png", expires, sig, now)
    assert not local.verify("0" * 64, "image/jpeg", expires, sig, now)
    assert not local.verify(stored.sha256, "image/jpeg", expires + 3600, sig, now)


async def test_local_store_refuses_an_address_that_is_no_sha256(local: LocalBlobs) -> None:
    """A path-like or malformed address never reaches the file system."""
    with pytest.raises(BlobError):
        await local.read("../../etc/passwd")
    with pytest.raises(BlobError):
        await local.read("a" * 64)


def test_the_signing_key_is_made_once_and_kept(tmp_path: Path) -> None:
    """Without a configured key, one is created in the data folder and read back after."""
    first = local_signing_key(tmp_path, None)
    assert len(first) == 64
    assert local_signing_key(tmp_path, None) == first
    assert local_signing_key(tmp_path, "configured") == b"configured"


async def test_s3_store_keeps_one_copy_and_serves_presigned_urls(s3: S3Blobs) -> None:
    """Against a real S3 protocol peer: put once, read back, and fetch by presigned URL only."""
    first = await s3.put_file(io.BytesIO(PHOTO), "image/jpeg")
    again = await s3.put_bytes(PHOTO, "image/jpeg")
    assert (first.created, again.created) == (True, False)
    assert first.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert await s3.read(first.sha256) == PHOTO
    listed = s3._client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"blobs/{first.sha256}"]
    url = s3.signed_url(first.sha256, "image/jpeg", ttl_s=60)
    assert "X-Amz-Expires=60" in url
    assert "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
        assert fetched.status_code == 200
        assert fetched.content == PHOTO
        assert fetched.headers["content-type"] == "image/jpeg"
        bare = await client.get(url.split("?", 1)[0])
    assert bare.status_code == 403


async def test_s3_store_says_what_is_missing(s3: S3Blobs) -> None:
    """An absent blob does not exist, and reading it is a BlobError."""
    assert not await s3.exists("f" * 64)
    with pytest.raises(BlobError):
        await s3.read("f" * 64)


async def test_an_unreachable_s3_store_is_a_blob_error() -> None:
    """With nothing listening at the endpoint, puts and reads fail as BlobError, not boto's."""
    nowhere = S3Blobs.connect(
        "proofs",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="test",
        secret_access_key="test",
    )
    with pytest.raises(BlobError):
        await nowhere.put_bytes(PHOTO, "image/jpeg")
    with pytest.raises(BlobError):
        await nowhere.read("a" * 64)
