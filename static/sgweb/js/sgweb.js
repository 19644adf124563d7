/*
 * sgweb dashboard behaviour. Vanilla JS, no build step, progressive enhancement only:
 * every form works without this file; with it, forms validate inline, destructive actions
 * ask first, and the keyboard gets shortcuts.
 */
(function () {
  "use strict";

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  /* ------------------------------------------------------------ confirmation dialog */

  function confirmDialog(message, confirmLabel) {
    return new Promise((resolve) => {
      const dialog = $("#confirm-dialog");
      if (!dialog || typeof dialog.showModal !== "function") {
        resolve(window.confirm(message));
        return;
      }
      $("[data-confirm-message]", dialog).textContent = message;
      const ok = $("[data-confirm-ok]", dialog);
      ok.textContent = confirmLabel || "Delete";
      const onClose = () => {
        dialog.removeEventListener("close", onClose);
        resolve(dialog.returnValue === "ok");
      };
      dialog.addEventListener("close", onClose);
      dialog.returnValue = "";
      dialog.showModal();
      ok.focus();
    });
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.confirm && !form.dataset.confirmed) {
      event.preventDefault();
      const submitter = event.submitter;
      const accepted = await confirmDialog(form.dataset.confirm, form.dataset.confirmLabel);
      if (!accepted) {
        // Cancelled: the form shows what is in force again (a role select back on the role
        // the user still has), not the choice that was not made.
        form.reset();
        return;
      }
      form.dataset.confirmed = "1";
      if (form.hasAttribute("data-inline-validate")) {
        submitInline(form, submitter);
      } else {
        form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      }
      return;
    }
    if (form.hasAttribute("data-inline-validate")) {
      event.preventDefault();
      submitInline(form, event.submitter);
    }
  });

  /* ------------------------------------------------------------ inline validation */

  function clearErrors(form) {
    $$("[data-error-for]", form).forEach((el) => { el.textContent = ""; });
    $$("[aria-invalid]", form).forEach((el) => el.removeAttribute("aria-invalid"));
    const summary = $("[data-form-errors]", form);
    if (summary) summary.textContent = "";
  }

  function showErrors(form, errors) {
    let first = null;
    const leftovers = [];
    Object.entries(errors || {}).forEach(([field, messages]) => {
      const text = [].concat(messages).join(" ");
      const slot = $(`[data-error-for="${CSS.escape(field)}"]`, form);
      const input = form.elements.namedItem(field);
      if (slot && field !== "__all__") {
        slot.textContent = text;
        if (input && input.setAttribute) {
          input.setAttribute("aria-invalid", "true");
          if (slot.id) input.setAttribute("aria-describedby", slot.id);
          first = first || input;
        }
      } else {
        leftovers.push(text);
      }
    });
    const summary = $("[data-form-errors]", form);
    if (summary && leftovers.length) summary.textContent = leftovers.join(" ");
    if (first && typeof first.focus === "function") first.focus();
    else if (summary && leftovers.length) summary.scrollIntoView({ block: "nearest" });
  }

  async function submitInline(form, submitter) {
    const buttons = $$("button[type=submit], input[type=submit]", form);
    buttons.forEach((b) => b.setAttribute("aria-busy", "true"));
    clearErrors(form);
    const body = new FormData(form);
    if (submitter && submitter.name) body.append(submitter.name, submitter.value);
    try {
      // The attribute, not form.action: a field named "action" (a firewall rule's) shadows it.
      const response = await fetch(form.getAttribute("action") || window.location.href, {
        method: "POST",
        body,
        headers: { "X-Requested-With": "fetch", Accept: "application/json" },
        credentials: "same-origin",
      });
      let payload = {};
      try { payload = await response.json(); } catch (_) { payload = {}; }
      if (response.ok && payload.redirect) {
        const target = new URL(payload.redirect, window.location.href);
        const here = window.location;
        if (target.pathname === here.pathname && target.search === here.search) {
          // Only the #fragment differs: assigning would scroll, not show the change.
          here.hash = target.hash;
          here.reload();
          return;
        }
        here.assign(target.href);
        return;
      }
      if (response.ok) { window.location.reload(); return; }
      showErrors(form, payload.errors || { __all__: [payload.detail || `The server refused the change (${response.status}).`] });
    } catch (err) {
      showErrors(form, { __all__: ["Could not reach the server. Check the connection and try again."] });
    } finally {
      buttons.forEach((b) => b.removeAttribute("aria-busy"));
      delete form.dataset.confirmed;
    }
  }

  /* ------------------------------------------------------------ client-side hints */

  // Only hints: the server's validators are the authority and their messages win.
  const IPV4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
  function looksLikeCidr(value, family) {
    const [address, length, extra] = value.split("/");
    if (extra !== undefined) return "Use the form address/length, for example 203.0.113.0/24.";
    const isV4 = IPV4.test(address);
    const isV6 = !isV4 && address.includes(":") && /^[0-9a-fA-F:.]+$/.test(address);
    if (!isV4 && !isV6) return "Not an IP address or CIDR, for example 203.0.113.0/24 or 2001:db8::/32.";
    if (family === "IPv4" && !isV4) return "This is an IPv6 prefix but the rule is IPv4.";
    if (family === "IPv6" && !isV6) return "This is an IPv4 prefix but the rule is IPv6.";
    if (length !== undefined) {
      const max = isV4 ? 32 : 128;
      if (!/^\d+$/.test(length) || Number(length) > max) return `The prefix length must be 0 to ${max}.`;
    }
    return "";
  }
  function hintFor(input) {
    const value = input.value.trim();
    if (!value) return "";
    const kind = input.dataset.hint;
    if (kind === "cidr") {
      const form = input.form;
      const family = form && form.elements.namedItem("ethertype") ? form.elements.namedItem("ethertype").value : "";
      return looksLikeCidr(value, family);
    }
    if (kind === "port") {
      const protocol = input.form && input.form.elements.namedItem("protocol");
      const icmp = protocol && /icmp/.test(protocol.value);
      const max = icmp ? 255 : 65535;
      const min = icmp ? 0 : 1;
      if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
        return icmp ? "ICMP type and code are 0 to 255." : "Ports are 1 to 65535.";
      }
    }
    if (kind === "mac" && !/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(value)) {
      return "A MAC address looks like fa:16:3e:12:34:56.";
    }
    return "";
  }
  document.addEventListener("input", (event) => {
    const input = event.target;
    if (!input.dataset || !input.dataset.hint) return;
    const slot = input.form && $(`[data-error-for="${CSS.escape(input.name)}"]`, input.form);
    if (!slot) return;
    const hint = hintFor(input);
    slot.textContent = hint;
    if (hint) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  });

  /* ------------------------------------------------------------ rule form */

  function syncRuleForm(form) {
    const protocol = form.elements.namedItem("protocol");
    if (!protocol) return;
    const value = protocol.value;
    const icmp = /icmp/.test(value);
    const ported = ["tcp", "udp", "sctp", "udplite", "6", "17", "132", "136"].includes(value);
    const min = $("[data-port-min-label]", form);
    const max = $("[data-port-max-label]", form);
    if (min) min.textContent = icmp ? "ICMP type" : "Port from";
    if (max) max.textContent = icmp ? "ICMP code" : "Port to";
    $$("[data-ports-field]", form).forEach((el) => { el.hidden = !(icmp || ported); });
    const remoteKind = form.querySelector("input[name=remote_kind]:checked");
    const kind = remoteKind ? remoteKind.value : "cidr";
    $$("[data-remote-field]", form).forEach((el) => { el.hidden = el.dataset.remoteField !== kind; });
  }

  function applyPreset(form, button) {
    const preset = JSON.parse(button.dataset.preset || "{}");
    $$(".preset", form).forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
    const set = (name, value) => {
      const field = form.elements.namedItem(name);
      if (field && value !== undefined) field.value = value === null ? "" : String(value);
    };
    set("preset", button.dataset.presetName);
    set("protocol", preset.protocol);
    set("port_range_min", preset.port_range_min);
    set("port_range_max", preset.port_range_max);
    if (preset.direction) {
      const radio = form.querySelector(`input[name=direction][value="${preset.direction}"]`);
      if (radio) radio.checked = true;
    }
    syncRuleForm(form);
    clearErrors(form);
    const next = form.elements.namedItem("remote_ip_prefix");
    if (next && !next.closest("[hidden]")) next.focus();
  }

  function initRuleForms() {
    $$("form[data-rule-form]").forEach((form) => {
      syncRuleForm(form);
      // While typing, not on leaving the field: "tcp" then Tab must land in the port fields
      // that "tcp" shows (a change event would show them only after focus has moved past).
      form.addEventListener("input", (event) => {
        if (event.target.name === "protocol") syncRuleForm(form);
      });
      form.addEventListener("change", (event) => {
        const name = event.target.name;
        if (["protocol", "port_range_min", "port_range_max"].includes(name)) {
          // A hand edit means the preset no longer describes the rule.
          const presetField = form.elements.namedItem("preset");
          if (presetField) presetField.value = "custom";
          $$(".preset", form).forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.presetName === "custom")));
        }
        syncRuleForm(form);
      });
      $$(".preset", form).forEach((button) => {
        button.addEventListener("click", () => applyPreset(form, button));
      });
    });
  }

  /* ------------------------------------------------------------ small conveniences */

  function initAutosubmit() {
    $$("[data-autosubmit]").forEach((el) => {
      el.addEventListener("change", () => el.form && el.form.requestSubmit());
    });
  }

  function initCopy() {
    document.addEventListener("click", async (event) => {
      const button = event.target.closest("[data-copy]");
      if (!button) return;
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent.trim();
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        document.execCommand("copy");
      }
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }

  // A link that opens a <details> section elsewhere on the page and puts the cursor in it.
  function initOpenDetails() {
    document.addEventListener("click", (event) => {
      const link = event.target.closest("[data-open-details]");
      if (!link) return;
      const details = document.getElementById(link.dataset.openDetails);
      if (!details) return;
      event.preventDefault();
      details.open = true;
      details.scrollIntoView({ block: "nearest" });
      const field = details.querySelector("input:not([type=hidden]):not([readonly]), select, textarea");
      if (field) field.focus();
    });
  }

  // A link that reloads the page (no inline handlers: the pages run under a strict CSP).
  function initReload() {
    document.addEventListener("click", (event) => {
      if (event.target.closest("[data-reload]")) { event.preventDefault(); window.location.reload(); }
    });
  }

  function initDismiss() {
    document.addEventListener("click", (event) => {
      const button = event.target.closest("[data-dismiss]");
      if (button) button.closest(".message").remove();
    });
  }

  function isTyping(target) {
    return target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName);
  }

  // "/" focuses the page's search, "g" then a letter jumps between pages, Escape closes menus.
  function initKeyboard() {
    let leader = false;
    let leaderTimer = null;
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        $$("details[open].user-menu").forEach((d) => d.removeAttribute("open"));
        return;
      }
      if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
      if (event.key === "?") {
        const help = $("#keyboard-help");
        if (help && typeof help.showModal === "function" && !help.open) {
          event.preventDefault();
          help.showModal();
        }
        return;
      }
      if (event.key === "/") {
        const search = $("[data-search]");
        if (search) { event.preventDefault(); search.focus(); search.select(); }
        return;
      }
      if (leader) {
        leader = false;
        clearTimeout(leaderTimer);
        const link = $(`[data-goto="${CSS.escape(event.key)}"]`);
        if (link) { event.preventDefault(); window.location.assign(link.href); }
        return;
      }
      if (event.key === "g") {
        leader = true;
        leaderTimer = setTimeout(() => { leader = false; }, 1200);
      }
    });
    document.addEventListener("click", (event) => {
      $$("details[open].user-menu").forEach((d) => { if (!d.contains(event.target)) d.removeAttribute("open"); });
    });
  }

  function initRelativeTimes() {
    const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
    const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    const render = () => {
      const now = Date.now();
      $$("time[data-relative]").forEach((el) => {
        const when = Date.parse(el.getAttribute("datetime"));
        if (Number.isNaN(when)) return;
        const seconds = Math.round((when - now) / 1000);
        const [unit, size] = units.find(([, s]) => Math.abs(seconds) >= s) || ["second", 1];
        el.textContent = Math.abs(seconds) < 5 ? "just now" : format.format(Math.round(seconds / size), unit);
        if (!el.title) el.title = new Date(when).toLocaleString();
      });
    };
    render();
    setInterval(render, 30000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    initRuleForms();
    initAutosubmit();
    initCopy();
    initDismiss();
    initReload();
    initOpenDetails();
    initKeyboard();
    initRelativeTimes();
  });

  window.sgweb = { confirmDialog, showErrors, clearErrors };
})();
