/*
 * sgweb live pages: one small WebSocket client (reconnect with backoff, a visible state) and the
 * page behaviours that use it. No library, no CDN. Every page renders its first state on the
 * server; this file only keeps it current, so without it (or without a socket) pages still read.
 *
 * Protocol: sgweb/live/PROTOCOL.md. Messages are JSON objects with a `type`.
 */
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  /* ------------------------------------------------------------ the client */

  const STATE_TEXT = {
    connecting: "connecting",
    live: "live",
    reconnecting: "reconnecting",
    paused: "paused",
    refused: "not available",
    offline: "offline",
  };
  // Closed by the server on purpose: retrying would be refused again.
  const FINAL_CODES = { 4401: "signed out", 4404: "not available", 4403: "not allowed" };

  /**
   * connect(path, onMessage, options) -> {pause, resume, close, state}
   * options.indicator: element(s) showing the state; options.stream: true when the server sends
   * about once a second, so silence for a while means "stale".
   */
  function connect(path, onMessage, options) {
    options = options || {};
    const indicators = [].concat(options.indicator || $$("[data-live-state]")).filter(Boolean);
    let socket = null;
    let attempt = 0;
    let timer = null;
    let state = "connecting";
    let paused = false;
    let closed = false;
    let lastMessageAt = 0;

    function show(next, detail) {
      state = next;
      indicators.forEach((el) => {
        el.dataset.state = next;
        el.textContent = detail || STATE_TEXT[next] || next;
        el.title = {
          live: "Updates arrive as they happen. Click to pause.",
          paused: "Updates are paused. Click to resume.",
          reconnecting: "The connection dropped; retrying.",
          connecting: "Connecting…",
          stale: "Connected, but nothing has arrived for a few seconds (is the host's agent running?).",
        }[next] || "";
      });
      if (options.onState) options.onState(next);
    }

    function url() {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${window.location.host}${path}`;
    }

    function open() {
      if (closed || paused) return;
      clearTimeout(timer);
      show(attempt ? "reconnecting" : "connecting");
      try {
        socket = new WebSocket(url());
      } catch (_) {
        schedule();
        return;
      }
      socket.addEventListener("open", () => { attempt = 0; show("live"); });
      socket.addEventListener("message", (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (_) { return; }
        lastMessageAt = Date.now();
        if (state !== "live") show("live");
        try { onMessage(message); } catch (err) { console.error("sgweb live:", err); }
      });
      socket.addEventListener("close", (event) => {
        socket = null;
        if (closed || paused) return;
        if (FINAL_CODES[event.code]) {
          closed = true;
          show("refused", FINAL_CODES[event.code]);
          return;
        }
        schedule();
      });
    }

    function schedule() {
      attempt += 1;
      // 0.5 s, 1 s, 2 s … capped at 15 s, with jitter so a restarted server is not stampeded.
      const base = Math.min(15000, 500 * 2 ** Math.min(attempt - 1, 5));
      const delay = base / 2 + Math.random() * base / 2;
      show("reconnecting");
      clearTimeout(timer);
      timer = setTimeout(open, delay);
    }

    function pause() {
      paused = true;
      clearTimeout(timer);
      if (socket) socket.close(1000);
      socket = null;
      show("paused");
    }

    function resume() {
      if (!paused || closed) return;
      paused = false;
      attempt = 0;
      open();
    }

    // Clicking the indicator pauses and resumes: a frozen table is easier to read and copy.
    indicators.forEach((el) => {
      el.setAttribute("role", "button");
      el.tabIndex = 0;
      const toggle = () => (paused ? resume() : pause());
      el.addEventListener("click", toggle);
      el.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); } });
    });

    // A streaming page that hears nothing for a while says so rather than pretending to be live.
    if (options.stream) {
      setInterval(() => {
        if (state === "live" && lastMessageAt && Date.now() - lastMessageAt > 5000) {
          // The next message brings it back to "live" (the message handler checks the state).
          show("stale", "live · no data");
        }
      }, 1000);
    }

    window.addEventListener("offline", () => show("offline"));
    window.addEventListener("online", () => { if (!socket && !paused) { attempt = 0; open(); } });
    window.addEventListener("pagehide", () => { closed = true; if (socket) socket.close(1000); });

    open();
    return { pause, resume, close: () => { closed = true; if (socket) socket.close(1000); }, get state() { return state; } };
  }

  /* ------------------------------------------------------------ formatting */

  // iptables -L -v style: 1234 → 1234, 12345 → 12K, 3456789 → 3456K, then M, G.
  function compact(n) {
    if (n === null || n === undefined) return "—";
    n = Number(n);
    const units = ["", "K", "M", "G", "T"];
    let unit = 0;
    while (n >= 100000 && unit < units.length - 1) { n = Math.floor(n / 1000); unit += 1; }
    return `${n}${units[unit]}`;
  }
  function rate(pps) {
    if (!pps) return "0/s";
    if (pps < 10) return `${pps.toFixed(1)}/s`;
    return `${compact(Math.round(pps))}/s`;
  }
  function ago(at) {
    if (!at) return "never";
    const seconds = Math.max(0, Math.round(Date.now() / 1000 - at));
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return `${Math.round(seconds / 86400)} d ago`;
  }
  function tick(el) {
    // Restart the animation even when the same row ticks on consecutive seconds.
    el.classList.remove("tick");
    void el.offsetWidth;
    el.classList.add("tick");
  }
  function text(el, value, title) {
    if (!el) return;
    if (el.textContent !== value) el.textContent = value;
    if (title !== undefined) el.title = title;
  }

  /* ------------------------------------------------------------ port page: chains + counters */

  function initChains(section) {
    const portId = section.dataset.portId;
    if (!portId || section.dataset.live === "off") return;
    const seen = new Map(); // "chain|position" -> packets last shown
    $$("tr[data-position]", section).forEach((row) => {
      const packets = row.dataset.packets;
      if (packets !== undefined && packets !== "") seen.set(`${row.dataset.family}|${row.dataset.chain}|${row.dataset.position}`, Number(packets));
    });
    const updated = $("[data-counters-at]", section);

    function onCounters(message) {
      let latest = null;
      (message.chains || []).forEach((chain) => {
        (chain.rules || []).forEach((rule) => {
          // IPv4 and IPv6 chains share their names: the family tells them apart.
          const key = `${chain.family}|${chain.name}|${rule.position}`;
          const row = section.querySelector(`tr[data-family="${chain.family}"][data-chain="${CSS.escape(chain.name)}"][data-position="${rule.position}"]`);
          if (!row) return;
          text($("[data-packets]", row), compact(rule.packets), `${rule.packets} packets`);
          text($("[data-bytes]", row), compact(rule.bytes), `${rule.bytes} bytes`);
          text($("[data-rate]", row), rate(rule.pps), rule.bps ? `${Math.round(rule.bps)} bytes/s` : "");
          row.classList.toggle("is-idle", !rule.packets);
          row.dataset.packets = rule.packets;
          const before = seen.get(key);
          if (before !== undefined && rule.packets > before) {
            tick(row);
            latest = row;
          }
          seen.set(key, rule.packets);
        });
      });
      // The line that matched most recently keeps a marker until another one matches.
      if (latest) {
        $$("tr.is-latest", section).forEach((r) => r.classList.remove("is-latest"));
        latest.classList.add("is-latest");
      }
      if (updated && message.at) {
        updated.textContent = new Date(message.at * 1000).toLocaleTimeString([], { hour12: false });
      }
    }

    function onChains(message) {
      // The server painted the same chains; a different rule list (the group changed while the
      // page was open) is the one case where reloading the section is the honest answer.
      const painted = $$("tr[data-position]", section).map((r) => `${r.dataset.family}|${r.dataset.chain}|${r.dataset.position}|${r.dataset.kind}`).sort().join(",");
      const sent = [];
      (message.chains || []).forEach((c) => (c.rules || []).forEach((r) => sent.push(`${c.family}|${c.name}|${r.position}|${r.kind}`)));
      sent.sort();
      const stale = $("[data-chains-changed]", section);
      if (stale) stale.hidden = !sent.length || painted === sent.join(",");
    }

    function onHost(message) {
      if (message.type === "host-status") updateHostPills(message);
      const note = $("[data-agent-note]", section);
      if (note && message.type === "host-status") note.hidden = message.alive !== false;
    }

    connect(`/ws/ports/${portId}`, (message) => {
      if (message.type === "counters") onCounters(message);
      else if (message.type === "chains") onChains(message);
      else if (message.type === "host-status" || message.type === "apply") onHost(message);
    }, { indicator: $$("[data-live-state]", section), stream: true });

    // One family at a time once scripts run; without them both stay visible, one after the other.
    const families = $$("[data-family-switch] input", section);
    const showFamily = (value) => $$(".chain-family", section).forEach((el) => { el.hidden = el.dataset.family !== value; });
    families.forEach((radio) => radio.addEventListener("change", () => showFamily(radio.value)));
    if (families.length) showFamily((families.find((r) => r.checked) || families[0]).value);

    // The raw iptables lines, on demand: most readers want the words, some want the rule.
    const toggle = $("[data-toggle-raw]", section);
    if (toggle) {
      toggle.addEventListener("click", () => {
        const on = section.classList.toggle("show-raw");
        toggle.setAttribute("aria-pressed", String(on));
      });
    }
  }

  /* ------------------------------------------------------------ security group: hits, changes */

  function applyRuleHits(table, message, state) {
    // The first messages may predate the agents' first reading for this page's watch (zeros
    // from ports nobody was watching); after about two seconds every port's chains are read.
    state.messages += 1;
    const observed = state.messages >= 3 && Boolean(message.at);
    (message.rules || []).forEach((hit) => {
      const row = table.querySelector(`tr[data-rule-id="${CSS.escape(hit.rule_id)}"]`);
      if (!row) return;
      const before = Number(row.dataset.hitCount || 0);
      const cell = $("[data-hits]", row);
      text(cell, compact(hit.packets), `${hit.packets} packets, ${hit.bytes} bytes over ${hit.ports} port(s)`);
      text($("[data-rate]", row), rate(hit.pps));
      const last = $("[data-last-hit]", row);
      if (last) {
        // The later of what this watch saw and the true last hit the control plane kept
        // (accounting reads every counter, watched or not).
        const at = Math.max(hit.last_hit_at || 0, Number(last.dataset.keptAt || 0));
        last.dataset.at = at || "";
        const when = at ? ago(at) : hit.packets ? "earlier" : "never";
        text(last, when, at ? new Date(at * 1000).toLocaleString()
          : hit.packets ? "Hit before accounting saw it: the time is not known yet" : "Never hit since the rule was created");
      }
      row.dataset.hitCount = hit.packets;
      // Unused only if neither the kernel now nor the kept history ever counted a packet.
      const kept = Number(row.dataset.keptPackets || 0);
      const unused = observed && !hit.packets && !kept && hit.ports > 0;
      row.classList.toggle("is-unused", unused);
      const pill = $("[data-unused]", row);
      if (pill) pill.hidden = !unused;
      if (hit.packets > before && row.dataset.observed) tick(row);
      row.dataset.observed = "1";
    });
    const unusedCount = $$("tr.is-unused", table).length;
    const summary = $("[data-unused-count]");
    if (summary && observed) {
      summary.textContent = `${unusedCount} never hit`;
      summary.hidden = !unusedCount;
    }
    if (table.dataset.sortedBy === "hits") sortByHits(table, table.dataset.sortDir);
  }

  const CHANGE_VERBS = { create: "added", update: "changed", delete: "deleted" };

  // Someone else (the API, the CLI, another browser) changed the group: the server draws the
  // rules again and the page swaps them in, keeping its socket, its sort and its scroll.
  async function refreshGroup(section, message) {
    let fresh;
    try {
      const response = await fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (_) { return; }
    const table = $("table[data-rule-hits]", section);
    const sorted = table && table.dataset.sortedBy === "hits" ? table.dataset.sortDir : null;
    const counts = new Map($$("tr[data-rule-id]", section).map((r) => [r.dataset.ruleId, r.dataset.hitCount]));
    ["[data-rules-body]", "[data-rule-total]", "[data-rule-split]", "[data-revision]", "#group-ports"].forEach((selector) => {
      const now = $(selector);
      const next = $(selector, fresh);
      if (now && next) now.replaceWith(document.importNode(next, true));
    });
    $$("tr[data-rule-id]", section).forEach((row) => {
      if (counts.has(row.dataset.ruleId)) {
        if (counts.get(row.dataset.ruleId) !== undefined) row.dataset.hitCount = counts.get(row.dataset.ruleId);
        row.dataset.observed = "1";
      } else {
        row.classList.add("is-new");
        tick(row);
      }
    });
    const newTable = $("table[data-rule-hits]", section);
    if (newTable && sorted) { newTable.dataset.sortedBy = "hits"; newTable.dataset.sortDir = sorted; sortByHits(newTable, sorted); }
    const note = $("[data-group-changed]", section);
    if (note) {
      const who = message.actor || "someone";
      const verb = CHANGE_VERBS[message.action] || "changed";
      const when = new Date((message.at || Date.now() / 1000) * 1000).toLocaleTimeString([], { hour12: false, timeZoneName: "short" });
      note.textContent = `${who} ${verb} ${message.object_repr} at ${when}.`;
      note.hidden = false;
    }
  }

  // A `changes` message (a bulk create: this group's changes only) as the one change the
  // group page's note tells of: "alice added 600 security group rules".
  function oneChange(message) {
    if (message.type !== "changes") return message;
    const changes = message.changes || [];
    const last = changes[changes.length - 1] || {};
    if (changes.length === 1) return last;
    const types = new Set(changes.map((c) => c.object_type));
    const what = types.size === 1 ? `${(last.object_type || "object").replace(/_/g, " ")}s` : "objects";
    return { ...last, object_repr: `${changes.length} ${what}` };
  }

  function initGroupPage(section) {
    const groupId = section.dataset.groupLive;
    if (!groupId) return;
    const state = { messages: 0 };
    let pending = null;

    // Sorting is client-side: the rows are already here and the counts change every second.
    section.addEventListener("click", (event) => {
      const header = event.target.closest("[data-sort-hits]");
      const table = header && header.closest("table");
      if (!table) return;
      event.preventDefault();
      const dir = table.dataset.sortedBy === "hits" && table.dataset.sortDir === "desc" ? "asc" : "desc";
      table.dataset.sortedBy = "hits";
      table.dataset.sortDir = dir;
      header.closest("th").setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
      sortByHits(table, dir);
    });

    connect(`/ws/security-groups/${groupId}`, (message) => {
      if (message.type === "rule-hits") {
        const table = $("table[data-rule-hits]", section);
        if (table) applyRuleHits(table, message, state);
      } else if (message.type === "change" || message.type === "changes") {
        // A burst (a preset adding two rules, a bulk create) is drawn once.
        clearTimeout(pending);
        pending = setTimeout(() => refreshGroup(section, oneChange(message)), 150);
      }
    }, { indicator: $$("[data-live-state]", section), stream: Boolean($("table[data-rule-hits]", section)) });

    setInterval(() => {
      $$("[data-last-hit][data-at]", section).forEach((el) => {
        if (el.dataset.at) el.textContent = ago(Number(el.dataset.at));
      });
    }, 5000);
  }

  function sortByHits(table, dir) {
    const body = $("tbody", table);
    const rows = $$("tr[data-rule-id]", body);
    rows.sort((a, b) => {
      const diff = Number(a.dataset.hitCount || 0) - Number(b.dataset.hitCount || 0);
      return dir === "desc" ? -diff : diff;
    });
    rows.forEach((r) => body.appendChild(r));
  }

  /* ------------------------------------------------------------ hosts: status, applies, drift */

  const STATUS_PILL = {
    "in-sync": ["In sync", "ok"],
    syncing: ["Syncing", "warn syncing"],
    failed: ["Failed", "bad"],
    down: ["Down", "bad"],
    unknown: ["No agent", ""],
  };

  // Where a host's changes stand, as templates/dashboard/hosts/_sync_line.html says it.
  function syncLine(el, message) {
    const desired = message.desired_revision != null ? message.desired_revision : Number(el.dataset.desired);
    const applied = message.applied_revision != null ? message.applied_revision : Number(el.dataset.applied);
    // A host no agent ever reported for stays "no agent" (the server sends it as unknown).
    const status = message.status;
    let words;
    if (status === "unknown") words = `no agent: revision ${desired} waits until one starts`;
    else if (status === "down") words = `agent down: revision ${desired} waits`;
    else if (status === "failed") words = `apply failed: revision ${applied} stays in force`;
    else if (desired > applied) words = `applying revision ${desired} (revision ${applied} in force)`;
    else words = `revision ${applied} applied${message.last_apply_duration_ms != null ? ` in ${message.last_apply_duration_ms} ms` : ""}`;
    el.dataset.desired = desired;
    el.dataset.applied = applied;
    el.dataset.status = status;
    if (el.textContent !== words) { el.textContent = words; tick(el); }
  }

  function updateHostPills(message) {
    const [label, css] = STATUS_PILL[message.status] || [message.status, ""];
    $$(`[data-host-status="${CSS.escape(message.host)}"]`).forEach((pill) => {
      if (pill.dataset.status === message.status) return;
      pill.dataset.status = message.status;
      pill.className = `pill ${css}`.trim();
      pill.textContent = label;
      tick(pill);
    });
    $$(`[data-host-sync="${CSS.escape(message.host)}"]`).forEach((el) => syncLine(el, message));
    $$(`[data-host-field="${CSS.escape(message.host)}"]`).forEach((el) => {
      const field = el.dataset.field;
      if (field === "desired" && message.desired_revision != null) text(el, String(message.desired_revision));
      if (field === "applied" && message.applied_revision != null) text(el, String(message.applied_revision));
      if (field === "duration" && message.last_apply_duration_ms != null) text(el, `${message.last_apply_duration_ms} ms`);
    });
  }

  function addEvent(list, message) {
    if (!list) return;
    const item = document.createElement("li");
    item.className = `event ${message.type}`;
    const when = new Date((message.at || Date.now() / 1000) * 1000).toLocaleTimeString([], { hour12: false });
    let words = "";
    if (message.type === "apply") {
      words = message.ok
        ? `applied revision ${message.revision} in ${message.duration_ms} ms`
        : `failed to apply revision ${message.revision}: ${message.error}`;
    } else if (message.type === "drift") {
      words = message.words && message.words.length === 0
        ? "no drift; alerts cleared"
        : `drift found${message.repaired ? " and repaired" : ""}: ${message.detail}`;
    }
    const host = document.createElement("span");
    host.className = "mono";
    host.textContent = message.host;
    const time = document.createElement("time");
    time.textContent = when;
    const body = document.createElement("span");
    body.className = "what";
    body.append(host, ` ${words}`);
    if (message.type === "apply" && !message.ok) item.classList.add("bad");
    item.append(time, body);
    list.prepend(item);
    $$("li", list).slice(20).forEach((old) => old.remove());
    const empty = $("[data-events-empty]");
    if (empty) empty.hidden = true;
  }

  // The host page's alerts (what the agent reports and must not remove) follow each report.
  function updateDriftAlerts(message) {
    $$(`[data-drift-alerts="${CSS.escape(message.host)}"]`).forEach((box) => {
      const list = $("[data-drift-alert-list]", box);
      const alerts = message.alerts || [];
      if (list) {
        list.replaceChildren(...alerts.map((alert) => {
          const item = document.createElement("li");
          item.textContent = alert;
          return item;
        }));
      }
      box.hidden = alerts.length === 0;
    });
  }

  // The overview's "Recent changes": a change made anywhere (API, CLI, another browser) is
  // added on top, as the server draws it (dashboard/overview.html).
  function addChange(table, message) {
    if (!table) return;
    if (table.dataset.project && table.dataset.project !== message.project_id) return;
    const body = $("tbody", table);
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    const link = document.createElement("a");
    link.href = `/audit/${encodeURIComponent(message.id)}`;
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = message.action;
    const what = document.createElement("strong");
    what.textContent = message.object_repr.length > 48 ? `${message.object_repr.slice(0, 47)}…` : message.object_repr;
    link.append(tag, ` ${(message.object_type || "").replace(/_/g, " ")} `, what);
    const sub = document.createElement("span");
    sub.className = "sub";
    const time = document.createElement("time");
    const at = new Date((message.at || Date.now() / 1000) * 1000);
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleString([], { hour12: false, timeZoneName: "short" });
    time.title = time.textContent;
    sub.append(`${message.actor || "system"} · `, time);
    cell.append(link, sub);
    row.append(cell);
    body.prepend(row);
    tick(row);
    $$("tr", body).slice(Number(table.dataset.limit || 12)).forEach((old) => old.remove());
    table.hidden = false;
    const empty = $("[data-recent-empty]");
    if (empty) empty.hidden = true;
  }

  function initHostEvents(root) {
    const list = $("[data-event-list]");
    const changes = $("[data-recent-changes]");
    const path = root.dataset.liveEvents;
    connect(path, (message) => {
      if (message.type === "host-status") updateHostPills(message);
      else if (message.type === "apply" || message.type === "drift") addEvent(list, message);
      else if (message.type === "change") addChange(changes, message);
      else if (message.type === "changes" && changes) {
        // A bulk create: only the newest ones can show, the table keeps `limit` rows.
        (message.changes || []).slice(-Number(changes.dataset.limit || 12)).forEach((c) => addChange(changes, c));
      }
      if (message.type === "drift") updateDriftAlerts(message);
    }, { indicator: $$("[data-live-state]") });
  }

  /* ------------------------------------------------------------ where a change went */

  // The same words as sgweb/dashboard/delivery.py, which paints the first state.
  function seconds(value) {
    if (value === null || value === undefined) return "";
    if (value < 0.05) return "under 0.1 s"; // "0.0 s" reads as if nothing was measured
    return value < 10 ? `${value.toFixed(1)} s` : `${Math.round(value)} s`;
  }
  function hostDetail(host) {
    if (host.state === "applied") return `applied revision ${host.revision}${host.seconds != null ? ` in ${seconds(host.seconds)}` : ""}`;
    if (host.state === "failed") return `apply failed, the previous rules stay (${host.error})`;
    if (host.state === "no-agent") return "no agent, pending";
    if (host.state === "down") return "agent down, pending";
    if (host.revision == null) return "queued";
    return `applying revision ${host.revision}`;
  }
  function deliverySentence(hosts, noun, nothing) {
    if (!hosts.length) return nothing || "No host is affected: nothing to apply.";
    const applied = hosts.filter((h) => h.state === "applied");
    let head = `Applied on ${applied.length}/${hosts.length} ${noun || "hosts"}`;
    const known = [...new Set((applied.length ? applied : hosts).map((h) => h.revision).filter((r) => r != null))].sort((a, b) => a - b);
    if (known.length === 1) head += ` (revision ${known[0]})`;
    else if (known.length > 1) head += ` (revisions ${known[0]}\u2013${known[known.length - 1]})`;
    const times = applied.map((h) => h.seconds).filter((t) => t != null);
    if (applied.length && times.length && applied.length === hosts.length) head += ` in ${seconds(Math.max(...times))}`;
    const others = hosts.filter((h) => h.state !== "applied");
    if (!others.length) return `${head}.`;
    const named = others.slice(0, 12).map((h) => `${h.name}: ${hostDetail(h)}`).join("; ");
    const more = others.length > 12 ? `; ${others.length - 12} more` : "";
    return `${head}; ${named}${more}.`;
  }
  // A router change's network nodes (delivery.py's node_sentence): one is named, several counted.
  function nodeSentence(nodes) {
    if (nodes.length !== 1) return deliverySentence(nodes, "network nodes");
    const node = nodes[0];
    if (node.state !== "applied") return `${node.name}: ${hostDetail(node)}.`;
    return `Applied on ${node.name} (revision ${node.revision})${node.seconds != null ? ` in ${seconds(node.seconds)}` : ""}.`;
  }

  // A host's part follows its port path: `apply`, and `host-status` for liveness and revisions.
  function followHost(host, message, at) {
    if (message.type === "apply") {
      // A revision at or past the change's carries it; an unknown one (queued) is the next.
      const carries = host.revision == null || message.revision >= host.revision;
      if (message.ok && carries) {
        if (host.revision == null) host.revision = message.revision;
        host.state = "applied";
        host.seconds = message.at ? message.at - at : null;
      } else if (!message.ok && carries) {
        host.state = "failed";
        host.error = message.error || "apply failed";
      }
    } else if (message.type === "host-status") {
      followLiveness(host, message);
      if (message.applied_revision != null && host.revision != null && message.applied_revision >= host.revision) {
        host.state = "applied";
        // The host's last apply is this change's own only when it applied exactly that
        // revision (a later one would make the time look longer than it was).
        if (message.applied_revision === host.revision && message.last_apply_at) {
          host.seconds = message.last_apply_at - at;
        }
      }
    }
  }
  function followLiveness(host, message) {
    if (message.alive === false) host.state = host.state === "no-agent" ? "no-agent" : "down";
    else if (host.state === "down" || host.state === "no-agent") host.state = "pending";
  }
  // A network node's part follows its router path: `router-apply` (the node's router revisions
  // are not its port revisions, so `host-status` only says whether its agent runs).
  function followNode(node, message, at) {
    if (message.type === "host-status") { followLiveness(node, message); return; }
    if (message.type !== "router-apply") return;
    // With the revision not known, any apply since the commit carries it (an older one, sent
    // as the socket opens, does not).
    const carries = node.revision == null ? (message.at || 0) >= at : message.revision >= node.revision;
    if (!carries) return;
    if (!message.ok) { node.state = "failed"; node.error = message.error || "apply failed"; return; }
    const own = node.revision == null || message.revision === node.revision;
    if (node.revision == null) node.revision = message.revision;
    node.state = "applied";
    // Timed only by its own apply after the commit (an unchanged state was in force already).
    node.seconds = own && message.at && message.at >= at ? message.at - at : null;
  }

  function initDelivery(box) {
    let data;
    try { data = JSON.parse(box.dataset.delivery); } catch (_) { return; }
    const hosts = new Map((data.hosts || []).map((h) => [h.name, h]));
    const nodes = new Map((data.nodes || []).map((h) => [h.name, h]));
    const every = () => [...hosts.values(), ...nodes.values()];
    if (!every().length || every().every((h) => h.state === "applied")) return;

    function paintItems(map, attribute) {
      map.forEach((host) => {
        const item = box.querySelector(`[${attribute}="${CSS.escape(host.name)}"]`);
        if (!item) return;
        if (item.dataset.state !== host.state) tick(item);
        item.dataset.state = host.state;
        text($("[data-delivery-detail]", item), hostDetail(host));
      });
    }

    function paint() {
      const parts = [];
      if (hosts.size || !nodes.size) parts.push(deliverySentence([...hosts.values()], "hosts", data.nothing));
      if (nodes.size) parts.push(nodeSentence([...nodes.values()]));
      text($("[data-delivery-sentence]", box), parts.join(" "));
      paintItems(hosts, "data-delivery-host");
      paintItems(nodes, "data-delivery-node");
      const list = every();
      box.classList.toggle("bad", list.some((h) => h.state === "failed"));
      box.classList.toggle("ok", list.every((h) => h.state === "applied"));
      return list.every((h) => h.state === "applied");
    }

    // statuses=now: the hosts' state as the socket opens (an apply may have finished between
    // this page's render and the socket); routers=now: the network nodes' last router applies.
    const query = nodes.size ? "statuses=now&routers=now" : "statuses=now";
    const socket = connect(`/ws/events?${query}`, (message) => {
      const host = hosts.get(message.host);
      if (host && host.state !== "applied") followHost(host, message, data.at);
      const node = nodes.get(message.host);
      if (node && node.state !== "applied") followNode(node, message, data.at);
      if ((host || node) && paint()) socket.close();
    }, { indicator: [] });
  }

  window.sgweb = Object.assign(window.sgweb || {}, {
    live: { connect, compact, rate, ago, tick, updateHostPills },
  });

  // Small menus (<details class="dropdown">) close on a click elsewhere or Escape.
  document.addEventListener("click", (event) => {
    $$("details.dropdown[open]").forEach((d) => { if (!d.contains(event.target)) d.removeAttribute("open"); });
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") $$("details.dropdown[open]").forEach((d) => d.removeAttribute("open"));
  });

  document.addEventListener("DOMContentLoaded", () => {
    if (!("WebSocket" in window)) return;
    $$("[data-firewall-chains]").forEach(initChains);
    $$("[data-group-live]").forEach(initGroupPage);
    $$("[data-delivery]").forEach(initDelivery);
    const events = $("[data-live-events]");
    if (events) initHostEvents(events);
  });
})();
