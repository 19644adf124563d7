"""Live counters and events over Channels (issue 5).

The package itself imports no Django, so the host agent can use `labels` and `wire` (pure);
the Channels parts (`consumers`, `routing`, `events`, `chains`, `hits`) are Django modules.
"""
