"""WebSocket consumers of the live protocol (see PROTOCOL.md), one module per socket.

Every consumer accepts, then checks who is asking: an anonymous user is closed with 4401, one
who may not see the object with 4404 (like a missing one, so ids cannot be probed).

Counters travel on plain Redis pub/sub (`sgweb.wire.live.counters_channel`), because the agents
publish there without Django; each watching consumer keeps its watch registered while
connected and receives its hosts' messages through its process's hub (`counterhub`: one
subscription and one parse per message for every socket of the process). Events (applies,
drift, changes, traces) come through the Channels layer's groups (`sgweb.live.events`).
"""
