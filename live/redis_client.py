"""redis-py clients for REDIS_URL: one per event loop, one for sync code.

A URL whose scheme ends in "+cluster" (redis+cluster://host:port, or
rediss+cluster:// with TLS) names any node of a Redis Cluster, and the clients
are redis-py's cluster clients, which find the other nodes themselves.

asyncio connections belong to the loop that opened them, and tests (and
async_to_sync) run several loops in one process, so async clients are kept per
loop (live.loops.PerLoop). Every wait is bounded by BUDGET, the longest a
request may wait on Redis: a stopped Redis refuses connections at once, and the
timeouts bound a hung or unreachable one. redis-py retries nothing (a retried
write whose reply was lost could apply twice); callers retry what is safe to
retry, and turn DOWN errors into what suits them. The cluster clients are set
up alike: no retries of their own after a connection error or a timeout. They
still follow MOVED and ASK redirections and wait out TRYAGAIN, since a node
that redirects or asks to try again ran nothing.

redis-py checks a pooled connection before handing it out and reconnects one
that the server closed (after a restart), but skips that check while its
maintenance notifications are on, as they are by default with RESP3; this
project has no use for them, so they are off.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from functools import cache
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.retry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.exceptions import ClusterError, RedisClusterException
from redis.maint_notifications import MaintNotificationsConfig

from live.loops import PerLoop

# The longest one operation waits on Redis in all (the pool, connecting, the
# reply, a retry): a person at the page gets an answer within it.
BUDGET = 2.0
CONNECT_TIMEOUT = BUDGET
SOCKET_TIMEOUT = BUDGET
# Connections per client; a burst of requests waits for one to free up (a
# pool that refuses instead turns a busy second into errors). The asyncio
# cluster client keeps this many per node and cannot wait: beyond it a command
# fails with MaxConnectionsError, a ConnectionError sent nowhere.
MAX_CONNECTIONS = 50
POOL_TIMEOUT = BUDGET
# What a client raises when Redis is down, restarting, unreachable or too slow;
# on a cluster also when a slot's primary has failed (CLUSTERDOWN), no node
# covers a slot, or no node can be reached to learn the slots. The cluster
# client raises RedisClusterException too for a command it cannot route (keys
# of several slots): the engine sends none, and its test suite runs on a
# cluster to keep it so.
DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    OSError,
    ClusterError,
    RedisClusterException,
)
# The scheme suffix that names a Redis Cluster.
CLUSTER = "+cluster"

_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": CONNECT_TIMEOUT,
    "socket_timeout": SOCKET_TIMEOUT,
    "socket_keepalive": True,
    "max_connections": MAX_CONNECTIONS,
    "timeout": POOL_TIMEOUT,
    "maint_notifications_config": MaintNotificationsConfig(enabled=False),
}
# Each loop's clients, by URL.
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster
_async: PerLoop[dict[str, AsyncClient]] = PerLoop(dict)


class Attempt:
    """One command's way to Redis: once it holds a connection, the command may have run.

    `with Attempt() as attempt:` notes whether the commands sent inside got as
    far as a connection. A class rather than a generator: every script call
    enters one, and a generator's context manager costs several times more.
    """

    _token: Token[Attempt | None]

    def __init__(self) -> None:
        self.connected = False

    def __enter__(self) -> Attempt:
        self._token = _attempt.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _attempt.reset(self._token)


_attempt: ContextVar[Attempt | None] = ContextVar("live_redis_attempt", default=None)


def note_connected() -> None:
    """Note, for the attempt under way, that a command of the caller's holds a connection."""
    current = _attempt.get()
    if current is not None:
        current.connected = True


class _Pool(redis.BlockingConnectionPool):
    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        # Connecting, and waiting for a connection, send nothing of the caller's.
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        note_connected()
        return connection


class _AsyncPool(redis.asyncio.BlockingConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        note_connected()
        return connection


class _Sent:
    """Marks the attempt once a command of the caller's goes out on a cluster connection.

    A cluster client connects inside the command (to learn the slots, to a
    node it has not met), so the mark waits for the command itself; commands
    the client sends for its own sake mark nothing.
    """

    _OWN = frozenset({"CLUSTER", "ASKING", "READONLY", "HELLO", "AUTH", "CLIENT", "SELECT", "PING"})
    _name = ""

    def pack_command(self, *args: Any) -> Any:
        self._name = str(args[0]).split(" ")[0].upper()
        return super().pack_command(*args)  # type: ignore[misc]

    def pack_commands(self, commands: Any) -> Any:
        self._name = "PIPELINE"
        return super().pack_commands(commands)  # type: ignore[misc]

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        # The commands of a connection's own set-up go out while it connects.
        if self._name not in self._OWN:
            await self._ready()
            note_connected()
        await super().send_packed_command(command, check_health)  # type: ignore[misc]

    async def _ready(self) -> None:
        # As redis-py's pool checks what it hands out: a connection the node
        # closed (it stopped or restarted) connects again before anything is
        # sent, so a change never goes out on a socket already known dead.
        await self.connect()  # type: ignore[attr-defined]
        try:
            if await self.can_read():  # type: ignore[attr-defined]
                raise redis.ConnectionError("Connection has data")
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            await self.disconnect()  # type: ignore[attr-defined]
            await self.connect()  # type: ignore[attr-defined]


class _ClusterConnection(_Sent, redis.asyncio.Connection):
    pass


class _ClusterSSLConnection(_Sent, redis.asyncio.SSLConnection):
    pass


def url() -> str:
    found = getattr(settings, "REDIS_URL", None)
    if not found:
        raise ImproperlyConfigured("REDIS_URL is not set (see the system check live.E004).")
    return str(found)


def is_cluster(address: str) -> bool:
    """Whether a Redis URL names a Redis Cluster (redis+cluster://, rediss+cluster://)."""
    return address.partition("://")[0].endswith(CLUSTER)


def _node_url(address: str) -> str:
    scheme, _, rest = address.partition("://")
    return f"{scheme.removesuffix(CLUSTER)}://{rest}"


def sync_client() -> redis.Redis | redis.cluster.RedisCluster:
    """The process's sync client (its pool is thread-safe)."""
    return _sync_client(url())


@cache
def _sync_client(address: str) -> redis.Redis | redis.cluster.RedisCluster:
    retry = redis.retry.Retry(NoBackoff(), 0)
    if is_cluster(address):
        # Each node gets a pool of _Pool: it waits for a free connection as the
        # single-node pool does. It notes a connection also when the client
        # asks a node for the slots, so a sync change that a stopped node
        # refused may be called "may or may not have been saved": more than is
        # known, never less.
        return redis.cluster.RedisCluster.from_url(
            _node_url(address), retry=retry, connection_pool_class=_Pool, **_OPTIONS
        )
    pool = _Pool.from_url(address, retry=retry, **_OPTIONS)
    return redis.Redis(connection_pool=pool)


def async_client() -> AsyncClient:
    """The running event loop's client."""
    address = url()
    clients = _async.get()
    if address not in clients:
        make = _async_cluster if is_cluster(address) else _async_single
        clients[address] = make(address)
    return clients[address]


def _async_single(address: str) -> redis.asyncio.Redis:
    retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
    pool = _AsyncPool.from_url(address, retry=retry, **_OPTIONS)
    return redis.asyncio.Redis(connection_pool=pool)


def _async_cluster(address: str) -> redis.asyncio.cluster.RedisCluster:
    options = {k: v for k, v in _OPTIONS.items() if k != "timeout"}
    client = redis.asyncio.cluster.RedisCluster.from_url(
        _node_url(address), retry=redis.asyncio.retry.Retry(NoBackoff(), 0), **options
    )
    # The cluster client takes no connection class; the nodes it creates read
    # it from these shared keyword arguments.
    kwargs = client.get_connection_kwargs()
    ssl = kwargs["connection_class"] is redis.asyncio.SSLConnection
    tracked = _ClusterSSLConnection if ssl else _ClusterConnection
    kwargs["connection_class"] = tracked
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = tracked
    return client


@cache
def _wire_module() -> Any:
    """live.redis_wire where hiredis, which reads its replies, is installed."""
    try:
        from live import redis_wire
    except ImportError:
        return None
    return redis_wire


def async_wire() -> Any:
    """The running loop's bare connection (live.redis_wire), or None where redis-py must serve.

    A plain redis:// URL gets one; TLS, Unix sockets and clusters keep
    redis-py's clients.
    """
    address = url()
    module = _wire_module()
    if module is None or not address.startswith("redis://"):
        return None
    return module.wire(address, CONNECT_TIMEOUT, SOCKET_TIMEOUT)


async def aclose() -> None:
    """Close the running loop's clients (tests, before their loop ends)."""
    module = _wire_module()
    if module is not None:
        module.close()
    clients = _async.get()
    while clients:
        _address, client = clients.popitem()
        if isinstance(client, redis.asyncio.cluster.RedisCluster):
            await client.aclose()
        else:
            await client.aclose(close_connection_pool=True)
