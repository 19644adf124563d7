"""The verdict arithmetic of a trace: what the kernel's traversals prove, hop by hop and for the
whole flow, and whether that agrees with the static verdict. Pure: no kernel, no wording."""

from __future__ import annotations

from typing import Any

UNKNOWN = "unknown"
DEFINITE = ("ACCEPT", "DROP")


def kernel_verdict(directions: list[tuple[str, str | None]], lost: str | None = None) -> str | None:
    """DROP if any traversal of the request or reply was dropped; ACCEPT if a traversal of the
    request was accepted and nothing was dropped; "unknown" when the request was seen but no
    traversal of it reached a decision (the trace ended early: that is no evidence of ACCEPT);
    None when the kernel saw no request at all. A trace that `lost` events proves a DROP it
    showed, nothing else: the missing events may hold a drop, or the packet itself."""
    if any(verdict == "DROP" for _direction, verdict in directions):
        return "DROP"
    if lost:
        return UNKNOWN
    if any(d == "request" and v == "ACCEPT" for d, v in directions):
        return "ACCEPT"
    if any(direction == "request" for direction, _verdict in directions):
        return UNKNOWN
    return None


def agreement(kernel: str | None, static: str | None) -> bool | None:
    """Whether the kernel agreed; None when it gave no definite verdict ("unknown" never agrees
    and never disagrees: it proves nothing either way)."""
    if kernel not in DEFINITE:
        return None
    return kernel == static


def hop_agrees(kernel: str | None, static: str | None) -> bool | None:
    if static is None:
        # Static: the packet never gets here. Seeing nothing agrees; a decision here does not.
        return True if kernel is None else (False if kernel in DEFINITE else None)
    return agreement(kernel, static)


def combined_verdict(
    traced_hops: list[dict[str, Any]],
) -> tuple[str | None, bool | None, dict[str, Any] | None]:
    """(kernel verdict of the whole flow, whether it agrees, the hop that decided)."""
    kernels = [hop["kernel"] for hop in traced_hops]
    if "DROP" in kernels:
        verdict: str | None = "DROP"
    elif "ACCEPT" in kernels:
        verdict = UNKNOWN if UNKNOWN in kernels else "ACCEPT"
    else:
        verdict = UNKNOWN if UNKNOWN in kernels else None
    votes = [hop["agrees"] for hop in traced_hops]
    # Only traced hops count, and only when each gave a definite answer: an unknown hop leaves
    # the whole proof undecided rather than letting the other hops speak for it.
    agrees = False if False in votes else (True if votes and all(votes) else None)
    decider = next((hop for hop in traced_hops if hop["kernel"] == "DROP"), None)
    if decider is None and verdict == "ACCEPT":
        decider = traced_hops[-1]
    return verdict, agrees, decider
