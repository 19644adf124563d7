"""The router contract between the control plane and a network node's agent (issue 16).

The port chains' contract (`sgweb.wire.sync`) carried over to routers: a network node's agent is
the same worker as on a compute host and consumes the same queue (``host.<token>``); what it is
told about is a second document, the network node's `NetworkNodeState`
(`sgweb.firewall.fwaas.codec`), numbered by a counter of its own so that router changes and port
changes never wait for each other. Pure (no Django, no Celery import).

Keys (``P`` the key prefix, ``NAME`` the host token as in `sgweb.wire.sync`):

* ``P:host:NAME:routers:revision``          the counter (INCR) numbering router states
* ``P:host:NAME:routers:desired``           the newest router state document
* ``P:host:NAME:routers:desired_revision``  its revision
* ``P:host:NAME:routers:desired_digest``    its digest
* ``P:host:NAME:routers:applied``           the agent's last router apply report (JSON)
* ``P:host:NAME:routers:watched``           set (with a short expiry) while a browser shows this
                                            node's router counters; the agent reads none otherwise
* ``P:host:NAME:routers:hits``              the agent's latest rule counters (`hits_document`)
* ``P:host:NAME:routers:nudge``             a pub/sub channel, not a key: "router revision N is
                                            stored" (`sync.nudge_message`), one PUBLISH per node
                                            and publish; the agent subscribes to it

Nudges as on the port path (`sgweb.wire.sync`): a publish PUBLISHes on the node's ``nudge``
channel (a hint, lost when the agent is not subscribed: it reads the newest stored state when it
subscribes again and polls the stored revision); the reconciler's nudge, which must wait for an
agent that is not listening, stays a `TASK_ROUTER_SYNC` task on the host's queue.

Storing uses `sync.STORE_DESIRED_LUA` (only a newer revision is stored) and the document is
`sync.desired_document`, so both paths read and order states the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgweb.wire import sync

# control -> host queue: "router revision N waits" (the reconciler's nudge; publishes PUBLISH)
TASK_ROUTER_SYNC = "sgweb.agent.router_sync"
TASK_RECORD_ROUTER_APPLY = "sgweb.hostsync.record_router_apply"  # agent -> control: a report

WATCH_TTL_S = 5  # a router page renews it with every poll
HITS_TTL_S = 10  # counters of an agent that stopped reading them go away
HITS_EVERY_S = 1.0

NEXT_REVISION_LUA = sync.NEXT_REVISION_LUA
STORE_DESIRED_LUA = sync.STORE_DESIRED_LUA
desired_document = sync.desired_document
parse_desired = sync.parse_desired


@dataclass(frozen=True, slots=True)
class RouterKeys:
    host: str
    prefix: str

    def _key(self, suffix: str) -> str:
        return f"{self.prefix}:host:{sync.host_token(self.host)}:routers:{suffix}"

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
    def applied(self) -> str:
        return self._key("applied")

    @property
    def watched(self) -> str:
        return self._key("watched")

    @property
    def hits(self) -> str:
        return self._key("hits")

    @property
    def nudge(self) -> str:
        """The node's router pub/sub channel (see the module doc)."""
        return self._key("nudge")


def hits_document(at: float, routers: dict[str, dict[str, tuple[int, int]]]) -> dict[str, object]:
    """{"at": t, "routers": {router id: {rule id: [packets, bytes]}}}: a rule's counters summed
    over the chains it is in (both directions, several groups)."""
    return {
        "at": at,
        "routers": {
            router: {rule: [packets, size] for rule, (packets, size) in sorted(rules.items())}
            for router, rules in sorted(routers.items())
        },
    }


def router_keys(host: str, prefix: str) -> RouterKeys:
    return RouterKeys(sync.check_host_name(host), prefix)
