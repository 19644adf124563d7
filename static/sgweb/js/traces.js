/*
 * Packet trace pages: the new-trace form (port pickers, protocol fields) and a trace's page,
 * where the kernel's packets stream in over /ws/traces/<id> (messages so far are replayed on
 * connect, so packets the server already painted are skipped by their key).
 */
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  /* ------------------------------------------------------------ the form */

  function syncForm(form) {
    $$("[data-trace-end]", form).forEach((end) => {
      const kind = (end.querySelector("input[type=radio]:checked") || {}).value || "address";
      $$("[data-end-field]", end).forEach((el) => { el.hidden = el.dataset.endField !== kind; });
    });
    const protocol = (form.querySelector("input[name=protocol]:checked") || {}).value || "tcp";
    $$("[data-proto-field]", form).forEach((el) => {
      el.hidden = (el.dataset.protoField === "icmp") !== (protocol === "icmp");
    });
  }

  function initPicker(picker) {
    const search = $("[data-picker-search]", picker);
    const value = $("[data-picker-value]", picker);
    const list = $(".picker-options", picker);
    let timer = null;
    let active = -1;
    let items = [];

    function close() { list.hidden = true; search.setAttribute("aria-expanded", "false"); active = -1; }
    function choose(port) {
      value.value = port.id;
      search.value = port.label;
      close();
    }
    function highlight(index) {
      active = index;
      $$("li", list).forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    }
    async function load() {
      const query = search.value.trim();
      const response = await fetch(`/traces/ports?q=${encodeURIComponent(query)}`, { credentials: "same-origin" });
      if (!response.ok) return;
      items = (await response.json()).ports || [];
      list.replaceChildren(...items.map((port, i) => {
        const li = document.createElement("li");
        li.setAttribute("role", "option");
        li.id = `${list.id}-${i}`;
        const name = document.createElement("strong");
        name.textContent = port.name || port.id.slice(0, 8);
        const detail = document.createElement("span");
        detail.className = "mono muted";
        detail.textContent = ` ${port.addresses.join(", ")}`;
        const where = document.createElement("span");
        where.className = "faint";
        where.textContent = ` · ${port.host || "unbound"} · ${port.project}`;
        li.append(name, detail, where);
        li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(port); });
        return li;
      }));
      if (!items.length) {
        const li = document.createElement("li");
        li.className = "faint";
        li.textContent = "No port matches.";
        list.append(li);
      }
      list.hidden = false;
      search.setAttribute("aria-expanded", "true");
      highlight(items.length ? 0 : -1);
    }
    search.addEventListener("input", () => {
      // Typing replaces the pick; the server also accepts a typed id or a unique name.
      value.value = search.value.trim();
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    });
    search.addEventListener("focus", () => { if (!value.value) load(); });
    search.addEventListener("blur", () => setTimeout(close, 100));
    search.addEventListener("keydown", (event) => {
      if (list.hidden) return;
      if (event.key === "ArrowDown") { event.preventDefault(); highlight(Math.min(items.length - 1, active + 1)); }
      else if (event.key === "ArrowUp") { event.preventDefault(); highlight(Math.max(0, active - 1)); }
      else if (event.key === "Enter" && active >= 0 && items[active]) { event.preventDefault(); choose(items[active]); }
      else if (event.key === "Escape") close();
    });
  }

  function initForm(form) {
    syncForm(form);
    form.addEventListener("change", () => syncForm(form));
    $$("[data-port-picker]", form).forEach(initPicker);
  }

  /* ------------------------------------------------------------ a trace's page */

  const CHAIN_PREFIX = "neutron-openvswi-";

  function targetCss(verdict) {
    if (verdict === "DROP") return "drop";
    if (verdict === "ACCEPT" || verdict === "RETURN") return "accept";
    return "jump";
  }

  function stepItem(step) {
    const li = document.createElement("li");
    li.className = "trace-step";
    if (step.rule_id) li.dataset.ruleId = step.rule_id;
    const chain = document.createElement("span");
    chain.className = "chain mono";
    chain.title = step.chain + (step.position ? ` rule ${step.position}` : "");
    chain.textContent = step.chain.startsWith(CHAIN_PREFIX) ? step.chain.slice(CHAIN_PREFIX.length) : step.chain;
    if (step.position) {
      const pos = document.createElement("span");
      pos.className = "faint";
      pos.textContent = `:${step.position}`;
      chain.append(pos);
    }
    const words = document.createElement("span");
    words.className = "words";
    words.textContent = step.label || (step.event === "policy" ? "chain policy" : "");
    const target = document.createElement("span");
    target.className = `target target-${targetCss(step.verdict)}`;
    target.textContent = String(step.verdict || "").startsWith("JUMP:") ? "jump" : step.verdict;
    li.append(chain, words, target);
    return li;
  }

  // Same rule as tracepaint.is_plumbing: steps that only route the packet are folded.
  function isPlumbing(step) {
    if (step.rule_id) return false;
    if ((step.table || "filter") !== "filter") return true;
    return !["DROP", "ACCEPT", "RETURN"].includes(step.verdict) && step.event !== "policy";
  }

  function packetBlock(message) {
    const block = document.createElement("details");
    block.className = "hop packet tick";
    block.dataset.packetKey = `${message.direction}-${message.index}-${message.host}`;
    // As tracepaint.PacketView.expanded: the first packets and dropped ones open.
    block.open = Number(message.index) < 2 || message.verdict === "DROP";
    const head = document.createElement("summary");
    head.className = "hop-head";
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = `#${Number(message.index) + 1} ${message.direction}`;
    const host = document.createElement("span");
    host.className = "mono";
    host.textContent = message.host;
    // A router's hop: the network node traced that router's namespace, not its own.
    const router = document.createElement("span");
    router.className = "faint";
    if (message.router) router.textContent = ` router ${message.router}`;
    const verdict = document.createElement("span");
    verdict.className = `target target-${targetCss(message.verdict)}`;
    verdict.textContent = message.verdict;
    const decided = document.createElement("span");
    decided.className = "decided";
    head.append(tag, " ", host, router, decided, verdict);
    const steps = document.createElement("ol");
    steps.className = "trace-steps";
    const items = (message.steps || []).map((step) => {
      const li = stepItem(step);
      if (isPlumbing(step)) li.classList.add("plumbing");
      return [step, li];
    });
    items.forEach(([, li]) => steps.append(li));
    // The deciding line, as tracepaint.py picks it: the DROP, else the last group rule, else
    // the last step.
    const backwards = [...items].reverse();
    const pick = backwards.find(([s]) => s.verdict === "DROP")
      || backwards.find(([s]) => s.rule_id)
      || backwards.find(([s]) => String(s.label || "").includes("ESTABLISHED"))
      || items[items.length - 1];
    if (pick) {
      pick[1].classList.add("deciding");
      decided.textContent = pick[0].label || "";
    }
    block.append(head, steps);
    return block;
  }

  const STATUS = {
    done: ["Done", "ok"], observed: ["Observed", "ok"], failed: ["Failed", "bad"],
    timeout: ["Timed out", "warn"], running: ["Probing", "info syncing"],
  };

  function showResult(root, message) {
    const box = $("[data-trace-result]", root);
    if (box) {
      box.hidden = false;
      box.classList.remove("agrees", "disagrees", "neutral");
      box.classList.add(message.agrees === true ? "agrees" : message.agrees === false ? "disagrees" : "neutral");
      const strong = document.createElement("strong");
      const [label] = STATUS[message.status] || [message.status];
      strong.textContent = message.agrees === true ? "The kernel agreed." : message.agrees === false ? "The kernel disagreed." : `${label}.`;
      const words = document.createElement("span");
      words.textContent = ` ${message.summary || ""}`;
      box.replaceChildren(strong, words);
      box.classList.add("tick");
    }
    const pill = $("[data-trace-status]", root);
    if (pill) {
      const [label, css] = STATUS[message.status] || [message.status, ""];
      pill.className = `pill ${css}`.trim();
      pill.textContent = label;
    }
    root.dataset.finished = "";
    const empty = $("[data-packets-empty]", root);
    if (empty && !$$("[data-packet-key]", root).length) {
      empty.hidden = false;
      empty.querySelector("p").textContent = "No packet was captured.";
    }
  }

  // As tracepaint.packet_order: the request before the reply, each along the hosts it
  // crosses (the static walk's order; the reply's backwards), then by the order of sending.
  function orderKey(packets, message) {
    const hosts = (packets.dataset.hostOrder || "").split(" ").filter(Boolean);
    if (message.direction === "reply") hosts.reverse();
    const rank = hosts.includes(message.host) ? hosts.indexOf(message.host) : hosts.length;
    const direction = { request: 0, reply: 1 }[message.direction];
    const pad = (n, w) => String(n).padStart(w, "0");
    return `${direction === undefined ? 2 : direction}-${pad(rank, 3)}-${pad(Number(message.index) || 0, 6)}`;
  }
  function insertInOrder(packets, block, message) {
    block.dataset.order = orderKey(packets, message);
    const after = $$("[data-order]", packets).find((el) => el.dataset.order > block.dataset.order);
    packets.insertBefore(block, after || null);
  }

  // Once the trace is finished, the server's drawing replaces the live one: the same rule
  // words as the static walk, the result in one sentence, and "proven on" only if it was.
  async function redrawFinished(root) {
    try {
      const response = await fetch(window.location.pathname, { credentials: "same-origin" });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      ["[data-trace-result]", "[data-trace-packets]", "[data-trace-proof]"].forEach((selector) => {
        // The subtitle's proof line sits above the trace's root: look for it in the document.
        const now = $(selector, selector === "[data-trace-proof]" ? document : root);
        const next = $(selector, fresh);
        if (now && next) now.replaceWith(document.importNode(next, true));
      });
    } catch (_) { /* the live drawing stays */ }
  }

  function initTrace(root) {
    const id = root.dataset.traceId;
    const packets = $("[data-trace-packets]", root);
    let client = null;
    const onMessage = (message) => {
      if (message.type === "trace-packet") {
        const key = `${message.direction}-${message.index}-${message.host}`;
        if (packets.querySelector(`[data-packet-key="${CSS.escape(key)}"]`)) return;
        insertInOrder(packets, packetBlock(message), message);
        const empty = $("[data-packets-empty]", root);
        if (empty) empty.hidden = true;
      } else if (message.type === "trace-result") {
        showResult(root, message);
        redrawFinished(root);
        // A finished trace sends nothing more: close rather than hold a socket open.
        if (client) client.close();
        $$("[data-live-state]", root).forEach((el) => el.remove());
      }
    };
    const toggle = $("[data-toggle-plumbing]", root);
    if (toggle) {
      toggle.addEventListener("click", () => {
        const on = root.classList.toggle("show-plumbing");
        toggle.setAttribute("aria-pressed", String(on));
      });
    }
    if (root.hasAttribute("data-finished")) return;
    client = window.sgweb.live.connect(`/ws/traces/${id}`, onMessage, { indicator: $$("[data-live-state]", root) });
  }

  document.addEventListener("DOMContentLoaded", () => {
    $$("form[data-trace-form]").forEach(initForm);
    if (!("WebSocket" in window) || !window.sgweb || !window.sgweb.live) return;
    $$("[data-trace]").forEach(initTrace);
  });
})();
