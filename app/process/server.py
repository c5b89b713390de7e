"""Running lastmile: the API process (main port and OsmAnd listener) and worker processes.

``serve`` is the one-machine shape: it starts embedded PostgreSQL and Valkey when no URLs are
configured, migrates, runs each configured worker as a child process (restarted if it dies),
and serves HTTP until SIGINT/SIGTERM; then it stops in reverse order: servers, workers,
embedded services. ``worker NAME`` runs one worker in this process, for scaling out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from pathlib import Path

import msgspec
import structlog
import uvicorn
from redis.asyncio import Redis

from adapters.email import SmtpConfig, SmtpEmailSender
from adapters.sms import (
    TEMPLATED_BODY,
    SmsSender,
    TemplatedHttpConfig,
    TemplatedHttpSmsSender,
    TwilioConfig,
    TwilioSmsSender,
)
from adapters.webhooks import WebhookConfig, WebhookSender
from app.api.notification_rules import default_rules
from app.logs import redact_server_logs
from app.main import create_app, create_osmand_app
from app.process.urls import base_url
from app.resources import live_provider, matrix_provider, open_resources, stream_names
from app.settings import WORKER_NAMES, Settings, SettingsError
from realtime.streams import trim_consumed
from workers.eta import EtaConsumer
from workers.hooks import HooksConsumer, HookSender, HookSenderConfig
from workers.learner import run_learner
from workers.lease import Leases, ShardKeeper, holder_name
from workers.notify import NotifyConsumer
from workers.persist import PersistConsumer
from workers.planner import run_planner
from workers.rollups import RollupsConsumer, Rules
from workers.runner import Runner, RunnerConfig
from workers.sender import Channels, Sender, SenderConfig
from workers.summary import run_summaries

log = structlog.get_logger(__name__)

WORKER_STOP_TIMEOUT_S = 15.0


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (two servers share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _uvicorn_config(
    app: object, host: str, port: int, tls: tuple[Path, Path] | None = None
) -> uvicorn.Config:
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        ssl_certfile=None if tls is None else tls[0],
        ssl_keyfile=None if tls is None else tls[1],
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        ws="websockets-sansio",
        ws_max_size=4 * 1024 * 1024,
    )


GC_THRESHOLDS = (700, 10, 10_000)
"""Python's default makes a full collection every ~100 young ones. A full collection walks every
tracked object; an API process holding thousands of sockets tracks close to a million (their
coroutines, tasks, queues), so each took 0.6-0.7 s, every few seconds, while nothing was acked
or sent (docs/BENCHMARKS.md, live fan-out). Young collections keep their defaults, so cyclic
garbage is still found; only the whole-heap walk becomes rare."""


def tune_gc() -> None:
    """For a long-running server or worker process, once its modules are imported: leave what
    exists now out of every future collection, and make full collections rare."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def stop_event_on_signals() -> asyncio.Event:
    """An event set by the first SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_api(
    settings: Settings,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[], None] | None = None,
    sockets: Sequence[socket.socket] = (),
) -> None:
    """Serve the API (and the OsmAnd listener) until ``stop`` is set.

    ``sockets``, when given, are already-bound listening sockets for the main port and then the
    OsmAnd port, used instead of binding ``settings``' ports (tests bind port 0 themselves so
    that no other process can take the port in between).
    """
    redact_server_logs()
    async with open_resources(settings) as resources:
        servers = [
            _Server(
                _uvicorn_config(
                    create_app(settings, resources), settings.host, settings.port, tls_of(settings)
                )
            )
        ]
        if settings.osmand_port is not None:
            servers.append(
                _Server(
                    _uvicorn_config(
                        create_osmand_app(resources), settings.host, settings.osmand_port
                    )
                )
            )
        tasks = [
            asyncio.create_task(s.serve(sockets=[sockets[n]] if n < len(sockets) else None))
            for n, s in enumerate(servers)
        ]
        while not all(s.started for s in servers):
            if any(t.done() for t in tasks):
                for t in tasks:
                    t.cancel()
                raise SystemExit("the API could not start (is the port taken?)")
            await asyncio.sleep(0.05)
        if on_ready is not None:
            on_ready()
        await stop.wait()
        for s in servers:
            s.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def tls_of(settings: Settings) -> tuple[Path, Path] | None:
    """The API port's certificate and key files, or None for plain HTTP (the OsmAnd port stays
    plain: the GPS apps' own certificate checks would refuse a local certificate authority)."""
    if settings.tls_cert is None and settings.tls_key is None:
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise SettingsError("LASTMILE_TLS_CERT", "expected both a certificate and its key")
    return settings.tls_cert, settings.tls_key


def sender_channels(settings: Settings) -> Channels:
    """The adapters a sender sends through, from the settings; a channel whose settings are
    missing is left out (its rows stay pending, saying what to set)."""
    email = None
    if settings.smtp_host is not None and settings.smtp_from is not None:
        email = SmtpEmailSender(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.smtp_from,
                tls=settings.smtp_tls,
                username=settings.smtp_username,
                password=settings.smtp_password,
            )
        )
    sms: SmsSender | None = None
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    number = settings.twilio_from
    if settings.sms_http_url is not None:
        if sid or token or number:
            raise SettingsError(
                "LASTMILE_SMS_HTTP_URL", "expected one SMS provider, got Twilio's settings too"
            )
        sms = TemplatedHttpSmsSender(
            TemplatedHttpConfig(
                url=settings.sms_http_url,
                method=settings.sms_http_method,
                headers=settings.sms_http_headers or {},
                body=settings.sms_http_body or TEMPLATED_BODY,
                body_format=settings.sms_http_body_format,
                id_field=settings.sms_http_id_field,
            )
        )
    elif sid and token and number:
        sms = TwilioSmsSender(
            TwilioConfig(
                account_sid=sid,
                auth_token=token,
                from_number=number,
                base_url=settings.twilio_base_url,
                # Twilio reports delivery only to a URL it can reach: the public one.
                status_callback_url=(
                    None
                    if not settings.public_url
                    else settings.public_url.rstrip("/") + "/v1/sms/status"
                ),
            )
        )
    return Channels(email=email, sms=sms)


def worker_consumer_name(name: str, index: int = 0) -> str:
    """A stable consumer name, so a restarted worker resumes its own pending entries."""
    return f"{socket.gethostname()}-{name}-{index}"


async def run_worker(
    settings: Settings, name: str, stop: asyncio.Event, *, consumer_name: str | None = None
) -> None:
    """Run worker ``name`` until ``stop`` is set."""
    if settings.database_url is None or settings.redis_url is None:
        raise ValueError("a worker needs LASTMILE_DATABASE_URL and LASTMILE_REDIS_URL")
    if name not in WORKER_NAMES:
        raise ValueError(f"expected a worker name in {', '.join(WORKER_NAMES)}, got {name!r}")
    if name == "sender":  # it polls the outbox and reads no stream
        sender = Sender(
            settings.database_url,
            sender_channels(settings),
            SenderConfig(batch=settings.sender_batch, max_tries=settings.sender_max_tries),
        )
        try:
            await sender.run(stop)
        finally:
            await sender.close()
        return
    redis = Redis.from_url(settings.redis_url)
    try:
        await _run_on_streams(
            settings,
            name,
            settings.database_url,
            redis,
            consumer_name or worker_consumer_name(name),
            stop,
        )
    finally:
        await redis.aclose()


async def _run_on_streams(
    settings: Settings,
    name: str,
    database_url: str,
    redis: Redis,
    consumer_name: str,
    stop: asyncio.Event,
) -> None:
    """Worker ``name``, one of those reading streams on ``redis``, until ``stop`` is set."""
    names = stream_names(settings)
    base = RunnerConfig(
        consumer_name=consumer_name,
        block_ms=settings.worker_block_ms,
        claim_idle_ms=settings.claim_idle_ms,
        dead_letter_stream=names.dead_letters,
    )
    if name == "webhooks":
        await _run_webhooks(settings, database_url, redis, base, stop)
        return
    if name == "rollups":
        await _run_rollups(settings, database_url, redis, base, stop)
        return
    if name == "eta":
        config = dataclasses.replace(base, batch_entries=settings.eta_batch)
        await _run_eta(settings, database_url, redis, config, stop)
        return
    if name == "planner":  # its own loop over the fair queue, beside a runner checking jobs
        await run_planner(
            redis,
            names,
            database_url,
            matrix_provider(settings),
            dataclasses.replace(base, batch_entries=1),
            max_s=settings.plan_max_s,
            lease_s=settings.plan_lease_s,
            stop=stop,
            learning=settings.learning,
        )
        return
    consumer: PersistConsumer | NotifyConsumer
    if name == "persist":
        consumer = PersistConsumer(names=names, database_url=database_url)
        config = dataclasses.replace(
            base,
            batch_entries=settings.persist_batch,
            trim_every_s=30.0,
            retention_s=settings.stream_retention_s,
            linger_s=settings.persist_linger_s,
        )
        trim = trim_consumed
    else:  # notify
        consumer = NotifyConsumer(
            names=names,
            database_url=database_url,
            rules=default_rules(settings),
            # Where the tracking links in messages point; set LASTMILE_PUBLIC_URL in production.
            public_url=base_url(settings),
        )
        config = dataclasses.replace(base, batch_entries=settings.notify_batch)
        trim = None
    try:
        await Runner(redis, consumer, config, trim=trim).run(stop)  # type: ignore[misc]
    finally:
        await consumer.close()


async def _run_rollups(
    settings: Settings, database_url: str, redis: Redis, config: RunnerConfig, stop: asyncio.Event
) -> None:
    """The rollups worker (the analytics facts, a consumer group on the events stream) and, when
    learning is on, the learner on its schedule, and, when email can be sent, the weekly
    summaries on theirs, side by side in this process."""
    consumer = RollupsConsumer(
        names=stream_names(settings),
        database_url=database_url,
        rules=Rules(
            on_time_tolerance_s=settings.on_time_tolerance_s,
            zone_res=settings.zone_h3_res,
            grid_co2_kg_per_kwh=settings.grid_co2_kg_per_kwh,
        ),
    )
    try:
        async with asyncio.TaskGroup() as group:
            runner = Runner(
                redis, consumer, dataclasses.replace(config, batch_entries=settings.rollups_batch)
            )
            group.create_task(runner.run(stop))
            if settings.learning:
                group.create_task(
                    run_learner(
                        database_url,
                        stop,
                        days=settings.learn_days,
                        interval_s=settings.learn_interval_h * 3600,
                    )
                )
            if settings.email_configured:
                group.create_task(
                    run_summaries(
                        database_url,
                        stop,
                        send_hour=settings.summary_hour,
                        analytics_url=f"{base_url(settings)}/analytics",
                    )
                )
    finally:
        await consumer.close()


async def _run_webhooks(
    settings: Settings, database_url: str, redis: Redis, config: RunnerConfig, stop: asyncio.Event
) -> None:
    """The webhooks worker: the fan-out (a consumer group on the events stream) and the
    delivery loop, side by side in this process (:mod:`workers.hooks`)."""
    names = stream_names(settings)
    consumer = HooksConsumer(names=names, database_url=database_url)
    sender = HookSender(
        database_url,
        WebhookSender(
            WebhookConfig(
                timeout_s=settings.webhook_timeout_s,
                allowed_address_classes=frozenset(settings.webhook_allow_addresses),
                # As many as sends in flight: more are never needed at once, and each
                # connection the pool holds costs CPU on every request (it looks at them all).
                max_connections=settings.webhook_batch,
            )
        ),
        HookSenderConfig(
            batch=settings.webhook_batch,
            max_tries=settings.webhook_max_tries,
            disable_after=settings.webhook_disable_after,
            lease_s=max(60.0, 3 * settings.webhook_timeout_s),
        ),
        redis=redis,
        names=names,
    )
    consumer.on_stored = sender.wake.set
    try:
        async with asyncio.TaskGroup() as group:  # one failing stops the other
            runner = Runner(redis, consumer, dataclasses.replace(config, batch_entries=200))
            group.create_task(runner.run(stop))
            group.create_task(sender.run(stop))
    finally:
        await consumer.close()
        await sender.close()


async def _run_eta(
    settings: Settings,
    database_url: str,
    redis: Redis,
    config: RunnerConfig,
    stop: asyncio.Event,
) -> None:
    """The ETA worker: a fair share of the ping shards, one runner over the shards whose lease
    this process holds (:class:`workers.lease.ShardKeeper`).

    Each time the held shards change, the trackers start afresh from the state saved in Redis:
    what this process remembered may be older than what another holder saved meanwhile.
    """
    names = stream_names(settings)

    async def work(shards: tuple[int, ...], halt: asyncio.Event) -> None:
        consumer = EtaConsumer(
            names=names,
            database_url=database_url,
            provider=live_provider(settings),
            redis=redis,
            shards=shards,
            learning=settings.learning,
            model_ttl_s=settings.learned_model_ttl_s,
        )
        try:
            await Runner(redis, consumer, config).run(halt)
        finally:
            await consumer.close()

    keeper = ShardKeeper(
        leases=Leases(redis, holder_name(config.consumer_name), settings.lease_ttl_s),
        lease_key=lambda shard: names.lease(f"eta:{shard}"),
        members_key=names.members("eta"),
        shards=names.shards,
        work=work,
    )
    await keeper.run(stop)


@contextlib.asynccontextmanager
async def worker_processes(settings: Settings, names: Sequence[str]) -> AsyncIterator[None]:
    """Run each named worker as a child process, restarting any that dies (exits non-zero),
    until exit (a name given twice runs twice)."""
    env = dict(os.environ)
    env["LASTMILE_DATABASE_URL"] = settings.database_url or ""
    env["LASTMILE_REDIS_URL"] = settings.redis_url or ""
    env["LASTMILE_DATA_DIR"] = str(settings.data_dir)
    env["LASTMILE_REDIS_PREFIX"] = settings.redis_prefix
    env["LASTMILE_PING_SHARDS"] = str(settings.ping_shards)
    if settings.demo_mail_dir is not None and settings.smtp_host is not None:
        # serve --demo's mail sink: the sender must send there, whatever the environment says
        env["LASTMILE_SMTP_HOST"] = settings.smtp_host
        env["LASTMILE_SMTP_PORT"] = str(settings.smtp_port)
        env["LASTMILE_SMTP_TLS"] = settings.smtp_tls
        env["LASTMILE_SMTP_FROM"] = settings.smtp_from or ""
    stopping = asyncio.Event()
    procs: dict[str, asyncio.subprocess.Process] = {}

    async def supervise(name: str, index: int) -> None:
        slot = f"{name}-{index}"
        delay = 0.5
        while not stopping.is_set():
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "app", "worker", name),
                *("--consumer", worker_consumer_name(name, index)),
                env=env,
            )
            procs[slot] = proc
            code = await proc.wait()
            if stopping.is_set():
                return
            if code == 0:
                # A worker exits 0 only when told to stop: a Ctrl-C or SIGTERM to the whole
                # process group reaches it before this supervisor learns that it is stopping.
                log.info("worker stopped", worker=slot)
                return
            log.error("worker exited; restarting", worker=slot, code=code, delay_s=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            delay = min(delay * 2, 30.0)

    # A name given twice runs twice (more ETA processes share the ping shards), each with a
    # consumer name of its own.
    slots = [(name, names[:i].count(name)) for i, name in enumerate(names)]
    tasks = [asyncio.create_task(supervise(name, index)) for name, index in slots]
    try:
        yield
    finally:
        stopping.set()
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                await asyncio.wait_for(proc.wait(), timeout=WORKER_STOP_TIMEOUT_S)
            except TimeoutError:
                log.warning("worker did not stop in time; killing it", worker=name)
                proc.kill()
                await proc.wait()
        await asyncio.gather(*tasks, return_exceptions=True)


def settings_with_urls(settings: Settings, database_url: str, redis_url: str) -> Settings:
    """``settings`` with both service URLs filled in."""
    return msgspec.structs.replace(settings, database_url=database_url, redis_url=redis_url)
