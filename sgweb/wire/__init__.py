"""The contracts between the control plane and the agents, pure: no Django, no app of ours.

`sync` (Redis keys, task and queue names, the desired-state document), `live` (watchers and
counters), `traces` (kernel proofs), `accounting` (counter deltas), `packetlog` (logged flows)
and `routers` (a network node's routers). Both sides import the same names from here.
"""
