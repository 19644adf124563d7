"""A trace's result in words: the single-host summary, and for a multi-host proof one row per
planned hop (kernel against static verdict of the same hop), the combined verdict and the
sentence that says who decided and what rests on the static verdict."""

from __future__ import annotations

import time
from typing import Any

from sgweb.wire import traces as protocol
from worker.trace_packets import PacketReporter
from worker.trace_verdict import UNKNOWN, combined_verdict, hop_agrees


def _hop_rows(
    request: protocol.ProofRequest,
    own_host: str,
    reporter: PacketReporter,
    others: dict[str, dict[str, Any]],
    missing: dict[str, str],
) -> tuple[list[dict[str, Any]], int]:
    """One row per planned hop (kernel verdict, deciding rule, agreement), and how many
    traversals were traced in all."""
    hops: list[dict[str, Any]] = []
    traversals = 0
    for planned in request.hops:
        host, static = planned["host"], planned.get("static")
        lost = None
        if host == own_host:
            kernel, deciding, lost = reporter.verdict, reporter.deciding, reporter.lost
            traced, why = True, ""
            traversals += len(reporter.directions)
        elif host in others:
            kernel, deciding = others[host].get("kernel_verdict"), others[host].get("deciding", "")
            traced, why, lost = True, "", others[host].get("lost")
            traversals += int(others[host].get("traversals") or 0)
        else:
            kernel, deciding, traced = None, "", False
            why = missing.get(host) or planned.get("why") or "it was not traced"
        agrees = hop_agrees(kernel, static) if traced else None
        hops.append({"host": host, "static": static, "kernel": kernel, "traced": traced,
                     "agrees": agrees, "deciding": deciding, "why": why,
                     "lost": lost})  # fmt: skip
        if planned.get("router_id"):
            hops[-1]["router"] = planned.get("router") or planned["router_id"]
    return hops, traversals


AGREEMENT_WORDS = {True: "agrees with", False: "contradicts", None: "cannot be compared with"}


def _verdict_sentence(
    request: protocol.ProofRequest,
    hops: list[dict[str, Any]],
    verdict: str | None,
    agrees: bool | None,
    decider: dict[str, Any] | None,
) -> list[str]:
    traced_hops = [hop for hop in hops if hop["traced"]]
    if verdict is None:
        return ["the kernel saw no packet of this flow on any traced host"]
    if verdict == UNKNOWN:
        lost = [f"{hop['host']}: {hop['lost']}" for hop in traced_hops if hop.get("lost")]
        if lost:
            return [f"a traced hop's trace is incomplete ({'; '.join(lost)}): nothing is proved"]
        return ["a traced hop saw the flow but no ACCEPT or DROP: nothing is proved"]
    place = (
        f" at {decider['host']} ({decider['deciding'] or 'no decision seen'})" if decider else ""
    )
    if len(traced_hops) == len(hops):
        parts = [f"kernel {verdict}{place} {AGREEMENT_WORDS[agrees]} the static verdict "
                 f"{request.static_verdict}"]  # fmt: skip
    else:
        # Part of the path is unproved: compare only what the kernel showed, hop by hop.
        plural = "s" if len(traced_hops) != 1 else ""
        parts = [
            f"kernel {verdict}{place} on the traced hop{plural}, which "
            f"{AGREEMENT_WORDS[agrees]} the static verdict of the same hop{plural}"
        ]
    if decider is not None:
        parts.append(f"hop {decider['host']} decided")
    return parts


def _untraced_router_drop(hops: list[dict[str, Any]], position: int) -> str | None:
    """What the traced hops around an untraced router say about the router's static drop: the
    packet left the host before it and no traced host after it saw the packet (None when they
    do not say that)."""
    router = hops[position]
    before = [hop for hop in hops[:position] if hop["traced"]]
    after = [hop for hop in hops[position + 1 :] if hop["traced"]]
    if router["static"] != "DROP" or not before or before[-1]["kernel"] != "ACCEPT":
        return None
    if any(hop["kernel"] is not None for hop in after):
        return None
    return (
        f"the packet left host {before[-1]['host']} towards router {router['router']} and was "
        "not seen arriving beyond it, consistent with the router's drop"
    )


def hop_summary(
    request: protocol.ProofRequest,
    hops: list[dict[str, Any]],
    combined: tuple[str | None, bool | None, dict[str, Any] | None],
    traversals: int,
    probe_ok: bool | None,
    retried: str,
) -> str:
    parts = _verdict_sentence(request, hops, *combined)
    parts.append("per hop: " + ", ".join(
        f"{hop['host']} kernel {hop['kernel'] or 'nothing seen'} / static "
        f"{hop['static'] or 'not reached'}" if hop["traced"]
        else f"{hop['host']} not traced" for hop in hops
    ))  # fmt: skip
    for position, hop in enumerate(hops):
        if not hop["traced"] and hop.get("router"):
            parts.append(f"router {hop['router']} on {hop['host']} rests on the static verdict "
                         f"({hop['why']})")  # fmt: skip
            if (consistent := _untraced_router_drop(hops, position)) is not None:
                parts.append(consistent)
        elif not hop["traced"]:
            role = "destination" if hop is hops[-1] else "other"
            parts.append(f"{role} host {hop['host']}'s part rests on the static verdict "
                         f"({hop['why']})")  # fmt: skip
    parts.append(f"{traversals} traversal{'s' if traversals != 1 else ''} traced")
    if probe_ok is not None:
        parts.append("the probe was answered" if probe_ok else "the probe got no answer")
    summary = "; ".join(parts)
    return f"{summary} ({retried})" if retried else summary


def hop_result(
    request: protocol.ProofRequest,
    own_host: str,
    reporter: PacketReporter,
    others: dict[str, dict[str, Any]],
    missing: dict[str, str],
    probe_ok: bool | None,
    retried: str,
) -> dict[str, Any]:
    """The trace-result of a multi-host proof: each traced hop's kernel verdict against the
    static verdict of the same hop; hops that could not be traced rest on the static verdict."""
    hops, traversals = _hop_rows(request, own_host, reporter, others, missing)
    combined = combined_verdict([hop for hop in hops if hop["traced"]])
    verdict, agrees, decider = combined
    if request.mode == protocol.MODE_PROBE:
        status = protocol.STATUS_DONE
    else:
        status = protocol.STATUS_OBSERVED if traversals else protocol.STATUS_TIMEOUT
    return {
        "type": "trace-result",
        "trace_id": request.trace_id,
        "status": status,
        "static_verdict": request.static_verdict,
        "kernel_verdict": verdict,
        "agrees": agrees,
        "summary": hop_summary(request, hops, combined, traversals, probe_ok, retried),
        "at": time.time(),
        "probe_ok": probe_ok,
        "retried": bool(retried),
        "hops": hops,
        "decided_by": decider["host"] if decider else None,
        "untraced_hosts": [hop["host"] for hop in hops if not hop["traced"]],
    }


def single_host_summary(
    request: protocol.ProofRequest,
    verdict: str | None,
    reporter: PacketReporter,
    probe_ok: bool | None,
) -> str:
    deciding, seen = reporter.deciding, len(reporter.directions)
    if verdict is None:
        if request.mode == protocol.MODE_OBSERVE:
            return f"no matching traffic within {request.observe_s:g} s"
        return "the kernel saw no packet of this flow"
    if verdict == UNKNOWN and reporter.lost:
        return (
            f"the kernel trace is incomplete ({reporter.lost}): {seen} "
            f"traversal{'s' if seen != 1 else ''} seen, nothing is proved either way (static "
            f"verdict {request.static_verdict})"
        )
    if verdict == UNKNOWN:
        return (
            f"the kernel traced {seen} traversal{'s' if seen != 1 else ''} of this flow but saw "
            f"no ACCEPT or DROP: nothing is proved either way (static verdict "
            f"{request.static_verdict})"
        )
    agreement_text = "agrees with" if verdict == request.static_verdict else "contradicts"
    text = f"kernel {verdict} ({deciding}) {agreement_text} the static verdict "
    text += request.static_verdict
    text += f"; {seen} traversal{'s' if seen != 1 else ''} traced"
    if probe_ok is not None:
        text += "; the probe was answered" if probe_ok else "; the probe got no answer"
    if reporter.lost:
        text += f"; the trace is incomplete ({reporter.lost})"
    return text
