// The router page's live firewall rule counters (issue 16): polls the router's hits endpoint
// once a second while the page is visible; each poll also keeps the network node's agent
// reading the counters (it reads none while nobody watches).
(() => {
  const panel = document.querySelector("[data-router-hits]");
  if (!panel) return;
  const url = panel.dataset.routerHits;
  const state = panel.querySelector("[data-hits-state]");
  const format = (n) => Number(n).toLocaleString();
  async function poll() {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      for (const row of panel.querySelectorAll("tr[data-rule-id]")) {
        const hit = data.rules[row.dataset.ruleId];
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
    } catch (error) {
      if (state) state.textContent = `counters unavailable (${error.message})`;
    }
  }
  poll();
  setInterval(poll, 1000);
})();
