/*
 * The drops page kept current: `drop-flows` messages from /ws/drops (sgweb/live/PROTOCOL.md).
 * The socket carries only flows of projects the user may see; this narrows them to the page's
 * subject and filters, then adds a row for a new flow or updates its count. Rows are built with
 * textContent: an address or an explanation is never parsed as HTML.
 */
(function () {
  "use strict";

  const PROTOCOLS = { icmp: 1, tcp: 6, udp: 17, "ipv6-icmp": 58, icmpv6: 58, sctp: 132 };

  function matches(flow, f) {
    if (f.portId && flow.port_id !== f.portId) return false;
    if (f.group && !f.portIds.includes(flow.port_id)) return false;
    if (f.host && flow.host !== f.host) return false;
    if (f.projectId && flow.project_id !== f.projectId.replace(/-/g, "")) return false;
    if (f.direction && flow.direction !== f.direction) return false;
    if (f.protocol) {
      const wanted = PROTOCOLS[f.protocol.toLowerCase()] ?? Number(f.protocol);
      if (flow.protocol_number !== wanted) return false;
    }
    if (f.address && flow.src !== f.address && flow.dst !== f.address) return false;
    if (f.port && String(flow.dst_port) !== f.port && String(flow.src_port) !== f.port) return false;
    return true;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function when(unix) {
    const date = new Date(unix * 1000);
    const time = el("time", date.toLocaleString());
    time.dateTime = date.toISOString();
    return time;
  }

  function endpoint(address, port) {
    return port == null ? address : `${address}:${port}`;
  }

  function link(text, href, marker) {
    const a = el("a", text, "btn btn-sm");
    a.href = href;
    a.setAttribute(marker, "");
    return a;
  }

  function buildRow(flow, canAllow) {
    const tr = el("tr");
    tr.dataset.flow = flow.id;
    const seen = el("td");
    seen.append(when(flow.last_seen));
    const first = el("span", "first ", "sub");
    first.append(when(flow.first_seen));
    seen.append(first);
    const count = el("td", String(flow.count), "num");
    count.dataset.dropCount = "";
    const event = el("td");
    const how = el("span", flow.direction, "sub");
    if (flow.ct_state) {
      const state = el("span", flow.ct_state);
      state.dataset.dropCtState = "";
      how.append(" · ", state);
    }
    event.append(el("span", flow.event, "tag"), " ", how);
    const what = el("td", null, "mono");
    const port = el("a", flow.port_name || flow.port_id);
    port.href = `/ports/${flow.port_id}`;
    let detail = `${flow.protocol} ${endpoint(flow.src, flow.src_port)} → ${endpoint(flow.dst, flow.dst_port)}`;
    if (flow.icmp_type != null) detail += ` type ${flow.icmp_type}/${flow.icmp_code}`;
    what.append(port, " ", el("span", `${detail} · ${flow.host}`, "sub"));
    const why = el("td", flow.explanation);
    why.dataset.dropExplanation = "";
    const actions = el("td", null, "actions");
    actions.append(link("Trace this", `/drops/${flow.id}/trace`, "data-trace-this"));
    if (canAllow && flow.event === "DROP") {
      actions.append(" ", link("Allow this", `/drops/${flow.id}/allow`, "data-allow-this"));
    }
    tr.append(seen, count, event, what, why, actions);
    return tr;
  }

  function init(panel) {
    const d = panel.dataset;
    const filters = {
      portId: d.portId, group: d.group, portIds: (d.portIds || "").split(" ").filter(Boolean),
      host: d.host, projectId: d.projectId, direction: d.direction, protocol: d.protocol,
      address: d.address, port: d.port,
    };
    const body = panel.querySelector("[data-drop-rows]");
    const empty = panel.querySelector("[data-drops-empty]");
    // "Allow this" needs the right to change the project: the server said so in the page.
    const canAllow = d.canAllow === "true";
    window.sgweb.live.connect(d.dropsLive, (message) => {
      if (message.type !== "drop-flows") return;
      (message.flows || []).filter((flow) => matches(flow, filters)).forEach((flow) => {
        const existing = body.querySelector(`tr[data-flow="${CSS.escape(flow.id)}"]`);
        if (existing) existing.remove();
        const row = buildRow(flow, canAllow);
        body.prepend(row);
        row.classList.add("flash");
        if (empty) empty.hidden = true;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!("WebSocket" in window) || !window.sgweb || !window.sgweb.live) return;
    document.querySelectorAll("[data-drops-live]").forEach(init);
  });
})();
