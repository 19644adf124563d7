"""What the control plane and the host agents agree on: Redis keys, task names, queues, documents.

Pure (no Django, no Celery import), so both sides import the same names. A deployment can run
several web servers and many hosts against one Redis; every key is per host, and revisions come
from one Redis counter per host so all web servers agree on the order of changes.

Keys (``P`` is the key prefix: ``sgweb`` unless the deployment's ``SGWEB_KEY_PREFIX`` says
otherwise, read by each side's configuration):

* ``P:host:NAME:revision``          the counter (INCR) that numbers desired states
* ``P:host:NAME:desired``           the newest desired state document (see `desired_document`)
* ``P:host:NAME:desired_revision``  that document's revision, cheap to read alone
* ``P:host:NAME:desired_digest``    its digest
* ``P:host:NAME:heartbeat``         the agent's heartbeat (JSON), expires after HEARTBEAT_TTL_S
* ``P:host:NAME:applied``           the agent's last apply report (JSON)
* ``P:host:NAME:applied_state``     the state it last applied (so a restarted agent can cut the
                                    connections of rules removed while it was down)
* ``P:host:NAME:nudge``             a pub/sub channel, not a key: "revision N is stored"
                                    (`nudge_message`), PUBLISHed for every host of a publish in
                                    one pipeline; the agent subscribes to its own
* ``P:shared:KIND:ID``              a piece of hosts' states shared by content (KIND ``ports``,
                                    ``sg``, ``members`` or ``settings``, ID its id: 192 bits of
                                    the sha256 of its text, `sgweb.firewall.manifest.piece_id`),
                                    stored once for every host naming it, expiring SHARED_TTL_S
                                    after the last publish that refreshed it (see `shared_key`)

A desired document's ``state`` is either a whole state (format 1, what older publishers wrote)
or a manifest (format 3, `sgweb.firewall.manifest`; format 2 is still read) naming shared
pieces by id; its digest is the manifest's. An agent keeps the pieces it holds and fetches the
missing ones in one MGET. A document that holds a manifest also says when its publisher last
made sure every piece it names was in Redis (``refreshed_at``, outside the digest): a publish
that keeps a host's ports piece refreshes its expiry only when that is PIECES_REFRESH_S old
(one EXPIRE per host per change was a tenth of a change's bytes at a thousand hosts). A piece
lost before (evicted, deleted) is found by the agent that needs it, which asks for a publish.

Nudges: a publish tells each host's agent on its ``nudge`` channel (about 60 bytes a host,
no queue: a host whose agent is not listening costs nothing and piles nothing up). A nudge is
only a hint, lost if the agent is not subscribed at that moment: the agent reads the newest
stored state when it (re)subscribes and polls the stored revision, and the reconciler nudges
an agent that holds another state with a `TASK_SYNC` task on its queue, which waits there.

``NAME`` in keys and queue names is the host's *token* (`host_token`): a plain name (letters,
digits, ``.``, ``_``, ``-``) is itself, so queue ``host.compute1`` stays as it always was; any
other string Neutron accepts as ``binding:host_id`` (spaces, ``:``, slashes, unicode, up to 255
characters) becomes ``~`` + its UTF-8 percent-encoding, which no plain name can collide with.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

DEFAULT_KEY_PREFIX = "sgweb"
DEFAULT_CONTROL_QUEUE = "control"

# Task names are contracts between processes that do not import each other.
TASK_SYNC = "sgweb.agent.sync"  # control plane -> host queue: "revision N is waiting"
TASK_RECORD_APPLY = "sgweb.hostsync.record_apply"  # agent -> control: an apply report
TASK_RECORD_DRIFT = "sgweb.hostsync.record_drift"  # agent -> control: drift found and repaired
TASK_REQUEST_STATE = "sgweb.hostsync.request_state"  # agent -> control: please (re)publish me
TASK_PUBLISH = "sgweb.hostsync.publish"  # web -> control: publish these (many) hosts

HEARTBEAT_INTERVAL_S = 2.0
# Shared pieces live a week after the last publish that named them: an agent holds what it
# applied in memory, and one that starts and finds a piece gone asks to be published again
# (the publish stores every piece it names), so expiry is the garbage collection.
SHARED_TTL_S = 7 * 24 * 3600
# A publish keeping a host's ports piece refreshes its expiry once a day at most: a piece named
# by a stored manifest thus lives at least SHARED_TTL_S - PIECES_REFRESH_S after the last publish.
PIECES_REFRESH_S = 24 * 3600
HEARTBEAT_TTL_S = 10  # three missed beats and a bit: the host shows as down

# Neutron's binding:host_id is a string of up to 255 characters; any of them is a usable host.
MAX_HOST_NAME = 255
ENCODED_MARK = "~"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_host_name(host: str) -> str:
    """The name itself, or ValueError for what no host can be called (empty, too long)."""
    if not isinstance(host, str) or not host or len(host) > MAX_HOST_NAME:
        raise ValueError(f"unusable host name {host!r}: 1 to {MAX_HOST_NAME} characters")
    return host


def host_token(host: str) -> str:
    """The host's name as it appears in Redis keys, queue and node names (see the module doc)."""
    check_host_name(host)
    if _PLAIN_NAME.fullmatch(host):
        return host
    return ENCODED_MARK + quote(host, safe="")


def host_from_token(token: str) -> str:
    """The inverse of `host_token`."""
    if token.startswith(ENCODED_MARK):
        return unquote(token[len(ENCODED_MARK) :], errors="strict")
    return token


def owner_gone(owner_pid: int | None) -> bool:
    """True when `owner_pid` (SGWEB_OWNER_PID, read by each side's configuration) has ended.

    Test harnesses start agents and control workers detached and name themselves as owner, so
    that a harness killed without cleaning up does not leave workers running forever. The lab
    command names no owner: its workers must outlive the command.
    """
    if owner_pid is None:
        return False
    try:
        os.kill(owner_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def parse_owner_pid(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() else None


def host_queue(host: str) -> str:
    """The Celery queue a host's agent consumes (a contract: ``host.<token>``)."""
    return f"host.{host_token(host)}"


@dataclass(frozen=True, slots=True)
class HostKeys:
    host: str
    prefix: str

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:host:{host_token(self.host)}:{suffix}"

    @property
    def revision(self) -> str:
        return self._key("revision")

    @property
    def desired(self) -> str:
        return self._key("desired")

    @property
    def desired_revision(self) -> str:
        return self._key("desired_revision")

    @property
    def desired_digest(self) -> str:
        return self._key("desired_digest")

    @property
    def heartbeat(self) -> str:
        return self._key("heartbeat")

    @property
    def applied(self) -> str:
        return self._key("applied")

    @property
    def applied_state(self) -> str:
        return self._key("applied_state")

    @property
    def nudge(self) -> str:
        """The host's pub/sub channel (see the module doc)."""
        return self._key("nudge")


def host_keys(host: str, prefix: str) -> HostKeys:
    return HostKeys(check_host_name(host), prefix)


def nudge_message(revision: int) -> str:
    """What a nudge says: the revision now stored (the agent reads the newest anyway)."""
    return str(int(revision))


def parse_nudge(raw: str | bytes) -> int | None:
    """The revision a nudge names; None for anything else (then the agent reads Redis)."""
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def shared_key(prefix: str, kind: str, piece_id: str) -> str:
    """Where a shared piece of hosts' states is stored (see the module doc)."""
    return f"{prefix}:shared:{kind}:{piece_id}"


# -- Lua, so that concurrent publishers from several web servers cannot reorder revisions -------

# KEYS: revision counter. ARGV: floor. A Redis that lost its data (restart without persistence)
# would restart the counter at 1, below what agents already applied; the control plane passes the
# last revision its database recorded as a floor, so numbering continues upwards.
NEXT_REVISION_LUA = """
local floor = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < floor then redis.call('SET', KEYS[1], floor) end
return redis.call('INCR', KEYS[1])
"""

# KEYS: desired, desired_revision, desired_digest. ARGV: revision, document, digest, force.
# Store only if newer than what is stored: an older revision never overwrites a newer one.
# Returns 1 stored, 0 older than stored (dropped), -1 same digest as stored (nothing new).
# force = "1" stores the same digest under the new revision anyway: the reconciler's way to
# move an agent that holds a different state under a revision number at or above the stored one.
STORE_DESIRED_LUA = """
local revision = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
if revision <= stored then return 0 end
if ARGV[4] ~= '1' and redis.call('GET', KEYS[3]) == ARGV[3] then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], revision)
redis.call('SET', KEYS[3], ARGV[3])
return 1
"""


# The same store for a host's manifest, the document built here from its parts (what
# `desired_document` writes, byte for byte): its state and digest are sent once, not twice.
# KEYS as above. ARGV: revision, manifest text, digest, force, published_at, refreshed_at
# (written by `store_manifest_args`).
STORE_MANIFEST_LUA = """
local revision = tonumber(ARGV[1])
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
if revision <= stored then return 0 end
if ARGV[4] ~= '1' and redis.call('GET', KEYS[3]) == ARGV[3] then return -1 end
redis.call('SET', KEYS[1], '{"revision":' .. ARGV[1] .. ',"digest":"' .. ARGV[3] ..
  '","published_at":' .. ARGV[5] .. ',"refreshed_at":' .. ARGV[6] .. ',"state":' .. ARGV[2] .. '}')
redis.call('SET', KEYS[2], revision)
redis.call('SET', KEYS[3], ARGV[3])
return 1
"""
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def store_manifest_args(
    revision: int, digest: str, state_text: str, published_at: float, refreshed_at: int, force: bool
) -> list[str]:
    """STORE_MANIFEST_LUA's ARGV. The digest is pasted into JSON there: only hex gets in."""
    if not _HEX_DIGEST.fullmatch(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return [
        str(int(revision)), state_text, digest, "1" if force else "0",
        repr(float(published_at)), str(int(refreshed_at)),
    ]  # fmt: skip


def desired_document(
    revision: int,
    digest: str,
    state_text: str,
    published_at: float,
    refreshed_at: int | None = None,
) -> str:
    """The stored document. The state is embedded verbatim so its digest stays checkable."""
    refreshed = "" if refreshed_at is None else f'"refreshed_at":{int(refreshed_at)},'
    return (
        f'{{"revision":{int(revision)},"digest":{json.dumps(digest)},'
        f'"published_at":{published_at!r},{refreshed}"state":{state_text}}}'
    )


@dataclass(frozen=True, slots=True)
class Desired:
    revision: int
    digest: str
    published_at: float
    state: dict[str, Any]
    # When the publisher last made sure the manifest's pieces were stored (0: never said).
    refreshed_at: int = 0
    # The decoded state, when the reader already assembled and checked it from a manifest's
    # pieces (worker.store): the agent then does not decode `state` again.
    assembled: Any = None


def parse_desired(text: str | bytes) -> Desired:
    data = json.loads(text)
    return Desired(
        revision=int(data["revision"]),
        digest=str(data["digest"]),
        published_at=float(data.get("published_at") or 0.0),
        state=data["state"],
        refreshed_at=int(data.get("refreshed_at") or 0),
    )
