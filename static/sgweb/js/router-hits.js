// The router page's live firewall rule counters (issue 16): pushed on /ws/routers/<id> as the
// network node's agent reads them (the open socket keeps the agent reading). Without a socket
// (no WebSocket, refused, reconnecting) the page polls the router's hits endpoint once a second
// instead; each poll also keeps the agent reading.
(() => {
  const panel = document.querySelector("[data-router-hits]");
  if (!panel) return;
  const url = panel.dataset.routerHits;
  const state = panel.querySelector("[data-hits-state]");
  const format = (n) => Number(n).toLocaleString();

  // One body for both paths: {at, rules: {rule id: {packets, bytes}}, error}.
  function paint(data) {
    for (const row of panel.querySelectorAll("tr[data-rule-id]")) {
      const hit = (data.rules || {})[row.dataset.ruleId];
      const packets = row.querySelector("[data-hits-packets]");
      const bytes = row.querySelector("[data-hits-bytes]");
      const next = hit ? format(hit.packets) : "—";
      if (packets.textContent !== next) {
        packets.textContent = next;
        row.classList.add("hit-flash");
        setTimeout(() => row.classList.remove("hit-flash"), 600);
      }
      bytes.textContent = hit ? format(hit.bytes) : "—";
    }
    if (state) {
      state.textContent = data.error || (data.at ? `read ${new Date(data.at * 1000).toLocaleTimeString()}` : "waiting for counters…");
    }
  }

  async function poll() {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      paint(await response.json());
    } catch (error) {
      if (state) state.textContent = `counters unavailable (${error.message})`;
    }
  }

  // Pushed while the socket is open ("stale" too: the socket still keeps the agent reading,
  // polling would show nothing newer); polled otherwise.
  let pushed = false;
  const live = window.sgweb && window.sgweb.live;
  const routerId = url.replace(/\/hits$/, "").split("/").pop();
  if (live && "WebSocket" in window) {
    live.connect(`/ws/routers/${encodeURIComponent(routerId)}`, (message) => {
      if (message.type === "router-hits") paint(message);
    }, {
      indicator: [],
      onState: (next) => { pushed = next === "live" || next === "stale" || next === "paused"; },
    });
  }
  setInterval(() => { if (!pushed) poll(); }, 1000);
})();
