"""Ping-trace: a static verdict at once, then the kernel's proof from the host agent (issue 5).

`protocol` is pure (the agent imports it); the rest is Django.
"""
