"""Proof capture with the S3-compatible blob store (moto's server, running here)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import boto3
import httpx
import msgspec
import pytest
from PIL import Image

from app.settings import Settings
from tests.adapters.test_blobs import moto_s3
from tests.app.test_proofs import capture, driver_stops, photo_bytes
from tests.conftest import Tenant
from tests.days import Day


@pytest.fixture
def settings(settings: Settings) -> Iterator[Settings]:
    """This test's settings with the S3 store: moto's server on a free port, a fresh bucket."""
    with moto_s3() as endpoint:
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **credentials
        ).create_bucket(Bucket="proofs")
        yield msgspec.structs.replace(
            settings,
            blob_store="s3",
            blob_s3_bucket="proofs",
            blob_s3_endpoint_url=endpoint,
            blob_s3_access_key_id="test",
            blob_s3_secret_access_key="test",
        )


async def test_a_capture_stores_its_images_in_the_s3_store(
    settings: Settings,
    http: httpx.AsyncClient,
    tenant: Tenant,
    delivery_day: Day,
    planner: None,
) -> None:
    """With LASTMILE_BLOB_STORE=s3 the images go to the bucket and are served presigned."""
    stop = (await driver_stops(http, tenant, delivery_day))[0]
    files = [("photo", ("door.jpg", photo_bytes(), "image/jpeg"))]
    answer = await capture(http, tenant, stop["id"], "s3-1", {"outcome": "delivered"}, files)
    assert answer.status_code == 201, answer.text
    url = answer.json()["photos"][0]["url"]
    assert url.startswith(settings.blob_s3_endpoint_url or "-")
    async with httpx.AsyncClient() as client:
        fetched = await client.get(url)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "JPEG"
