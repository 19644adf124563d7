"""The drop log (issue 13): the flows agents saw logged, explained in security-group words.

It sits above `sgweb.hostsync` (not inside `sgweb.packetlogs`, which hostsync's desired state
imports) because explaining a flow needs the host's compiled, trace-ready state.
"""
