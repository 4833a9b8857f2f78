"""How many tabs are open on each session, and their labels, counted where the sockets are.

In one process a dict is the truth. With several processes (REDIS_URL set)
each process also writes its own count and its tabs' labels into the session's
Redis hash, under a field named after the process, and keeps a short-lived
"alive" key per session fresh from a heartbeat; the total is the sum over
processes still alive and the labels their union, so the tabs of a process that
dies stop counting within seconds. A session's hash and alive keys share the
hash tag of its digest, so each script and command touches one slot of a Redis
Cluster. Redis trouble never fails a socket: the counts fall back to this
process's own.

The heartbeat (one per event loop, while this process has tabs) also restores
the counts after Redis lost them, drives live.realtime.probe, which checks
that pushes reach this process and has its sessions resync after they did not,
and every RECOUNT_BEATS beats reads the totals of this process's sessions
again: nobody announces a process that died, so its tabs leave the counts
shown here only then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.conf import settings

from live.loops import PerLoop
from live.realtime.probe import Probe

logger = logging.getLogger(__name__)

# This process's tabs per session, and their labels (each with how many tabs
# carry it). Module-level rather than per loop: they are what this process
# stores under its name in Redis, whichever loop a socket runs on.
_local: Counter[str] = Counter()
_labels: defaultdict[str, Counter[str]] = defaultdict(Counter)
# This process's field name in the counts, and its alive keys' suffix.
PROCESS = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
PREFIX = "live:presence:"
BEAT_SECONDS = 1.0
ALIVE_MS = 5000
# Beats between reading the totals again; a dead process's tabs leave the
# counts ALIVE_MS after its last beat, and its sessions' tabs here see it then.
RECOUNT_BEATS = 5
# A session's counts outlive it by a day at most, if every process forgot them.
COUNTS_MS = 24 * 3600 * 1000

# KEYS[1]: the session's hash. Each process has two fields: its name, holding
# its tab count, and its name + LABELS, holding its tabs' labels joined by ","
# (a field of their own, so that every other field is a count to sum). ARGV:
# the session's alive prefix (its keys share KEYS[1]'s slot), process, its
# count ("" to only read), its labels, alive TTL, counts TTL, LABELS. Fields of
# dead processes are dropped. Returns {total, live processes' labels joined by
# ","}.
LABELS = "/labels"
_TOTAL = """
local suffix = ARGV[7]
if ARGV[3] ~= '' then
  redis.call('SET', ARGV[1] .. ARGV[2], '1', 'PX', ARGV[5])
  if tonumber(ARGV[3]) > 0 then
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[3], ARGV[2] .. suffix, ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
  else
    redis.call('HDEL', KEYS[1], ARGV[2], ARGV[2] .. suffix)
  end
end
local total, labels, fields = 0, {}, redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local name = fields[i]
  local named = #name > #suffix and string.sub(name, -#suffix) == suffix
  local owner = named and string.sub(name, 1, -#suffix - 1) or name
  if redis.call('EXISTS', ARGV[1] .. owner) == 0 then
    redis.call('HDEL', KEYS[1], name)
  elseif not named then
    total = total + tonumber(fields[i + 1])
  elseif fields[i + 1] ~= '' then
    table.insert(labels, fields[i + 1])
  end
end
return {total, table.concat(labels, ',')}
"""


class Presence(NamedTuple):
    """The tabs open on a session, and the labels they gave themselves (sorted, once each)."""

    tabs: int
    labels: tuple[str, ...] = ()


NOBODY = Presence(0)


def _own(digest: str) -> Presence:
    return Presence(_local.get(digest, 0), tuple(sorted(_labels.get(digest, ()))))


def _entry(digest: str) -> tuple[int, str]:
    """This process's two values in the session's hash: its tab count and its labels."""
    own = _own(digest)
    return own.tabs, ",".join(own.labels)


def _shared() -> bool:
    return bool(getattr(settings, "REDIS_URL", None))


def _keys(digest: str) -> tuple[str, str]:
    """The session's hash of counts, and the prefix of its processes' alive keys."""
    counts = f"{PREFIX}{{{digest}}}"
    return counts, f"{counts}:alive:"


async def _total(digest: str, write: bool) -> Presence:
    """The tabs over live processes, after writing this process's own entry (if `write`)."""
    from live import redis_client  # redis-py is an extra: only a shared setup imports it

    try:
        client = redis_client.async_client()
        mine: tuple[str | int, str] = _entry(digest) if write else ("", "")
        counts, alive = _keys(digest)
        args = [alive, PROCESS, *mine, ALIVE_MS, COUNTS_MS, LABELS]
        total, named = await client.eval(_TOTAL, 1, counts, *args)
        return Presence(int(total), tuple(sorted(set(filter(None, named.split(","))))))
    except redis_client.DOWN as exc:
        logger.warning("Tab counts are this process's own: %s", exc.__class__.__name__)
        return _own(digest)


async def join(digest: str, label: str = "") -> Presence:
    """Count one more tab on a session, with its label if it has one; return the new state."""
    _local[digest] += 1
    if label:
        _labels[digest][label] += 1
    if not _shared():
        return _own(digest)
    _heartbeat()
    return await _total(digest, write=True)


async def leave(digest: str, label: str = "") -> Presence:
    """Count one tab fewer (the one that joined with `label`); return the new state."""
    _local[digest] -= 1
    if _local[digest] <= 0:
        del _local[digest]
    if label and digest in _labels:
        _labels[digest][label] -= 1
        if _labels[digest][label] <= 0:
            del _labels[digest][label]
        if not _labels[digest]:
            del _labels[digest]
    if not _shared():
        return _own(digest)
    return await _total(digest, write=True)


async def current(digest: str) -> Presence:
    if not _shared():
        return _own(digest)
    return await _total(digest, write=False)


async def count(digest: str) -> int:
    return (await current(digest)).tabs


async def counts(digests: Iterable[str]) -> dict[str, int]:
    """The tab counts of several sessions, by digest (the staff list)."""
    return {digest: await count(digest) for digest in digests}


def reset() -> None:
    """Forget the local counts (tests, and a fresh process)."""
    _local.clear()
    _labels.clear()


# --- the heartbeat ------------------------------------------------------------------


Watcher = Callable[[bool], Awaitable[None]]
CountWatcher = Callable[[str, Presence], Awaitable[None]]


@dataclass
class _Beat:
    task: asyncio.Task[None] | None = None
    # Told True when pushes stop reaching this process, False when they flow again.
    watchers: list[Watcher] = field(default_factory=list)
    # Told each session's totals as read again every RECOUNT_BEATS beats.
    counters: list[CountWatcher] = field(default_factory=list)
    beats: int = 0
    # Redis's run_id at the last beat: a new one means Redis restarted and lost the counts.
    run_id: str | None = None
    probe: Probe = field(default_factory=lambda: Probe(timeout=BEAT_SECONDS))


_beats: PerLoop[_Beat] = PerLoop(_Beat)


def _heartbeat() -> None:
    beat = _beats.get()
    if beat.task is None or beat.task.done():
        beat.task = asyncio.ensure_future(_beat_forever(beat))


def watch_pushes(watcher: Watcher) -> None:
    """Call `watcher(True)` when pushes stop reaching this process, `watcher(False)` when back."""
    watchers = _beats.get().watchers
    if watcher not in watchers:
        watchers.append(watcher)


def watch_counts(watcher: CountWatcher) -> None:
    """Call `watcher(digest, presence)` with the totals of this process's sessions, now and then."""
    counters = _beats.get().counters
    if watcher not in counters:
        counters.append(watcher)


async def _beat_forever(beat: _Beat) -> None:
    try:
        while _local:
            restarted = await _announce(beat)
            beat.beats += 1
            if restarted is not None and beat.beats % RECOUNT_BEATS == 0:
                await _recount(beat)
            was_lost = beat.probe.lost
            await beat.probe.check(restarted, list(_local))
            if beat.probe.lost != was_lost:
                for watcher in list(beat.watchers):
                    try:
                        await watcher(beat.probe.lost)
                    except Exception:
                        logger.exception("Could not tell the tabs about pushes")
            await asyncio.sleep(BEAT_SECONDS)
    finally:
        beat.probe.stop()


async def _recount(beat: _Beat) -> None:
    for digest in list(_local):
        totals = await _total(digest, write=False)
        for watcher in list(beat.counters):
            try:
                await watcher(digest, totals)
            except Exception:
                logger.exception("Could not show a session's tab count")


async def _announce(beat: _Beat) -> bool | None:
    """Keep this process alive and its counts stored; whether Redis restarted, None if down."""
    from live import redis_client

    if redis_client.is_cluster(redis_client.url()):
        await _announce_to_cluster()
        return False
    try:
        pipe = redis_client.async_client().pipeline(transaction=False)
        _store(pipe, list(_local))
        pipe.info("server")
        replies = await pipe.execute()
    except redis_client.DOWN:
        return None
    run_id, beat.run_id = beat.run_id, replies[-1].get("run_id")
    return run_id is not None and run_id != beat.run_id


def _store(pipe: Any, digests: list[str]) -> None:
    """Queue this process's entries for these sessions, and its alive marks on them."""
    for digest in digests:
        tabs, labels = _entry(digest)
        counts, alive = _keys(digest)
        pipe.set(alive + PROCESS, "1", px=ALIVE_MS)
        pipe.hset(counts, PROCESS, tabs)
        pipe.hset(counts, PROCESS + LABELS, labels)
        pipe.pexpire(counts, COUNTS_MS)


async def _announce_to_cluster() -> None:
    """Store the entries with a pipeline per primary: a primary that is down fails only its own.

    The channel layer is not on the cluster, so how the cluster fares says
    nothing of pushes: the probe alone tells that.
    """
    from redis.asyncio.cluster import RedisCluster

    from live import redis_client

    client = redis_client.async_client()
    assert isinstance(client, RedisCluster)
    by_node: defaultdict[str, list[str]] = defaultdict(list)
    try:
        await client.initialize()
        for digest in list(_local):
            node = client.get_node_from_key(_keys(digest)[0])
            by_node[node.name if node else ""].append(digest)
    except redis_client.DOWN:
        return

    async def send(digests: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        _store(pipe, digests)
        await pipe.execute()

    replies = await asyncio.gather(*map(send, by_node.values()), return_exceptions=True)
    for reply in replies:
        if isinstance(reply, BaseException) and not isinstance(reply, redis_client.DOWN):
            raise reply
