/* kiltmq management UI: what every page shares. The pages read and change the broker
   only through the HTTP API (/api), with the session cookie and its CSRF token. */
"use strict";

const K = (() => {
  const body = document.body;
  const tags = (body.dataset.tags || "").split(",").filter(Boolean);
  const K = {
    csrf: body.dataset.csrf,
    user: body.dataset.user,
    tags,
    readonly: body.classList.contains("readonly"),
    isAdmin: tags.includes("administrator"),
    isMonitor: tags.includes("administrator") || tags.includes("monitoring"),
    isPolicymaker: tags.includes("administrator") || tags.includes("policymaker"),
    /* Endpoints the API does not have yet (policies, definitions): one place to move. */
    adminApi: "/api",
    interval: 5000,
    paused: false,
  };

  K.enc = encodeURIComponent;

  K.api = async (method, path, data, opts = {}) => {
    const headers = { "Accept": "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = K.csrf;
    if (opts.headers) Object.assign(headers, opts.headers);
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = typeof data === "string" ? data : JSON.stringify(data);
    }
    const reply = await fetch(path, init);
    const text = await reply.text();
    let value = null;
    if (text) { try { value = JSON.parse(text); } catch (e) { value = text; } }
    /* The API answers 401 both when the session is gone ("not_authorized", "Login
       failed") and when the user may not do this ("not_authorised" with the reason, as
       RabbitMQ): only the first sends the page to the login form. */
    if (reply.status === 401 && !(value && value.error === "not_authorised")) {
      location.href = "/login?next=" + K.enc(location.pathname + location.search);
      throw new Error("logged out");
    }
    if (!reply.ok) {
      const reason = value && value.reason ? value.reason : reply.statusText;
      const err = new Error(typeof reason === "string" ? reason : JSON.stringify(reason));
      err.status = reply.status;
      throw err;
    }
    return value;
  };

  /* Element builder: K.el("a", {href: "/x", class: "y"}, "text", child). */
  K.el = (tag, attrs, ...kids) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  };
  K.$ = (sel, root) => (root || document).querySelector(sel);
  K.fill = (target, ...kids) => {
    const node = typeof target === "string" ? K.$(target) : target;
    if (node) node.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined));
    return node;
  };

  K.fmt = {
    num: (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en")),
    rate: (r) => {
      if (r === undefined || r === null) return "–";
      const v = Number(r);
      return v === 0 ? "0" : v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString("en");
    },
    bytes: (b) => {
      if (b === undefined || b === null) return "–";
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let v = Number(b), i = 0;
      while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
      return (i ? v.toFixed(1) : String(v)) + " " + units[i];
    },
    duration: (ms) => {
      let s = Math.floor(ms / 1000);
      const d = Math.floor(s / 86400); s -= d * 86400;
      const h = Math.floor(s / 3600); s -= h * 3600;
      const m = Math.floor(s / 60); s -= m * 60;
      return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + s + "s";
    },
    json: (v) => JSON.stringify(v),
  };
  K.rate = (item, key) => {
    const s = item && item.message_stats;
    return s && s[key + "_details"] ? s[key + "_details"].rate : 0;
  };

  K.link = {
    queue: (vhost, name) => `/queues/${K.enc(vhost)}/${K.enc(name)}`,
    exchange: (vhost, name) => `/exchanges/${K.enc(vhost)}/${K.enc(name)}`,
    connection: (name) => `/connections/${K.enc(name)}`,
  };

  K.flash = (message, kind = "ok") => {
    const box = K.$("#flash");
    if (!box) return;
    const note = K.el("p", { class: "note " + kind }, message);
    box.prepend(note);
    setTimeout(() => note.remove(), kind === "error" ? 12000 : 5000);
  };

  /* A form whose submit runs action(values, form); errors are shown, not thrown. */
  K.form = (selector, action) => {
    const form = typeof selector === "string" ? K.$(selector) : selector;
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const values = Object.fromEntries(new FormData(form).entries());
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      try {
        await action(values, form);
      } catch (err) {
        K.flash(err.message, "error");
      } finally {
        if (button) button.disabled = false;
      }
    });
  };
  K.parseJson = (text, what) => {
    if (!text || !text.trim()) return {};
    try { return JSON.parse(text); } catch (e) { throw new Error(what + " must be JSON: " + e.message); }
  };

  /* A key/value table of an object. */
  K.kv = (pairs) => K.el("table", { class: "kv" },
    ...pairs.map(([k, v]) => K.el("tr", {}, K.el("th", {}, k), K.el("td", {}, v))));
  K.tile = (label, value, extra) => K.el("div", { class: "tile" + (extra ? " " + extra : "") },
    K.el("span", { class: "value" }, value), K.el("span", { class: "label" }, label));
  /* A queue's consumer count, marked when messages wait and nobody consumes. */
  K.consumers = (q) => K.el("span", { class: q.consumers === 0 && q.messages_ready > 0 ? "starved" : null,
    title: q.consumers === 0 && q.messages_ready > 0 ? "messages wait, no consumer" : null }, K.fmt.num(q.consumers));
  K.badge = (text, kind) => K.el("span", { class: "badge " + (kind || "") }, text);

  /* Fill every <select class="vhost-choice"> and the vhost filter with the vhosts. */
  K.vhosts = async () => {
    const vhosts = (await K.api("GET", "/api/vhosts?columns=name")).map((v) => v.name);
    for (const select of document.querySelectorAll("select.vhost-choice, #vhost-filter")) {
      const keep = select.value;
      const first = select.id === "vhost-filter" ? [K.el("option", { value: "" }, "All")] : [];
      select.replaceChildren(...first, ...vhosts.map((v) => K.el("option", { value: v }, v)));
      if (keep || select.id === "vhost-filter") select.value = keep;
    }
    return vhosts;
  };

  /* Refresh fn now and every K.interval ms (skipped while paused or hidden). */
  const refreshers = [];
  K.every = (fn) => {
    refreshers.push(fn);
    const run = async () => {
      try { await fn(); } catch (err) { if (err.message !== "logged out") K.flash(err.message, "error"); }
    };
    run();
    setInterval(() => { if (!K.paused && !document.hidden) run(); }, K.interval);
  };
  K.refreshNow = () => refreshers.forEach((fn) => fn());
  const live = K.$("#live");
  if (live) live.addEventListener("click", () => {
    K.paused = !K.paused;
    live.classList.toggle("paused", K.paused);
    live.textContent = K.paused ? "paused" : "live";
  });

  /* The page's query string: lists keep filters, sort and page there (shareable). */
  K.params = () => new URLSearchParams(location.search);
  K.setParams = (changes) => {
    const params = K.params();
    for (const [k, v] of Object.entries(changes)) {
      if (v === "" || v === null || v === undefined || v === false) params.delete(k);
      else params.set(k, v);
    }
    const search = params.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  };

  /* A sortable table: columns [{label, value(row) -> node|text, sort: "api.key", num}]. */
  K.table = (columns, rows, opts = {}) => {
    const head = K.el("tr", {}, ...columns.map((c) => {
      const on = opts.sort && c.sort === opts.sort;
      const th = K.el("th", { class: (c.num ? "num " : "") + (c.sort ? "sortable" : "") + (on ? " sorted" : ""),
        title: c.title || null, "aria-sort": on ? (opts.reverse ? "descending" : "ascending") : null },
        c.label, on ? (opts.reverse ? " ▼" : " ▲") : "");
      if (c.sort && opts.onSort) th.addEventListener("click", () => opts.onSort(c.sort));
      return th;
    }));
    const body = rows.length
      ? rows.map((r) => K.el("tr", {}, ...columns.map((c) =>
          K.el("td", { class: c.num ? "num" : null }, c.value(r)))))
      : [K.el("tr", {}, K.el("td", { colspan: columns.length, class: "empty" }, opts.empty || "Nothing here."))];
    return K.el("table", { class: "list" }, K.el("thead", {}, head), K.el("tbody", {}, ...body));
  };

  /* A server-paged list (the API's page, page_size, name, use_regex, sort, sort_reverse). */
  K.list = ({ path, columns, defaultSort, byVhost, wanted }) => {
    const filters = K.$("#filters");
    const p = K.params();
    if (filters) {
      for (const input of filters.elements) {
        if (!input.name) continue;
        if (input.type === "checkbox") input.checked = p.get(input.name) === "true";
        else if (p.has(input.name)) {
          if (input.tagName === "SELECT" && !Array.from(input.options).some((o) => o.value === p.get(input.name)))
            input.append(K.el("option", { value: p.get(input.name) }, p.get(input.name)));
          input.value = p.get(input.name);
        }
      }
    }
    let latest = 0;
    const load = async () => {
      const mine = ++latest;
      const q = K.params();
      const vhost = byVhost ? q.get("vhost") || "" : "";
      const api = new URLSearchParams({
        page: q.get("page") || "1",
        page_size: q.get("page_size") || "100",
        sort: q.get("sort") || defaultSort || "name",
        sort_reverse: q.get("sort_reverse") || "false",
      });
      if (q.get("name")) api.set("name", q.get("name"));
      if (q.get("use_regex") === "true") api.set("use_regex", "true");
      if (wanted) api.set("columns", wanted.join(","));
      let data;
      try {
        data = await K.api("GET", path + (vhost ? "/" + K.enc(vhost) : "") + "?" + api);
      } catch (err) {
        if (err.status === 400 && q.get("page") && q.get("page") !== "1") {
          K.setParams({ page: "" });
          return load();
        }
        throw err;
      }
      if (mine !== latest) return;  /* a newer load is on its way */
      const sort = api.get("sort"), reverse = api.get("sort_reverse") === "true";
      K.fill("#table", K.table(columns, data.items, {
        sort, reverse, empty: q.get("name") ? "No match." : "Nothing here yet.",
        onSort: (key) => {
          K.setParams({ sort: key, sort_reverse: key === sort && !reverse ? "true" : "" });
          load();
        },
      }));
      K.fill("#count", `${K.fmt.num(data.filtered_count)} of ${K.fmt.num(data.total_count)}`);
      const pages = data.page_count || 1;
      const go = (n) => K.el("a", { href: "#", class: n === data.page ? "on" : null,
        onclick: (e) => { e.preventDefault(); K.setParams({ page: n === 1 ? "" : n }); load(); } }, n);
      const shown = [...new Set([1, data.page - 2, data.page - 1, data.page, data.page + 1, data.page + 2, pages])]
        .filter((n) => n >= 1 && n <= pages).sort((a, b) => a - b);
      K.fill("#pager", pages > 1 ? shown.map(go) : []);
    };
    if (filters) {
      let timer = null;
      const changed = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          const values = {};
          for (const input of filters.elements) {
            if (!input.name) continue;
            values[input.name] = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value;
          }
          if (values.page_size === "100") values.page_size = "";
          K.setParams({ ...values, page: "" });
          load().catch((err) => K.flash(err.message, "error"));
        }, 250);
      };
      filters.addEventListener("input", changed);
      filters.addEventListener("change", changed);
      filters.addEventListener("submit", (e) => { e.preventDefault(); changed(); });
    }
    K.every(load);
    return load;
  };

  /* The inputs of a filter form: each input's name, with prefix, is a query key. */
  const filterForm = (form, prefix, changed) => {
    if (!form) return;
    const p = K.params();
    for (const input of form.elements) {
      if (!input.name) continue;
      const value = p.get(prefix + input.name);
      if (input.type === "checkbox") input.checked = value === "true";
      else if (value !== null) input.value = value;
    }
    let timer = null;
    const update = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const values = {};
        for (const input of form.elements) {
          if (!input.name) continue;
          values[prefix + input.name] = input.type === "checkbox" ? (input.checked ? "true" : "") : input.value;
        }
        K.setParams(values);
        changed().catch((err) => K.flash(err.message, "error"));
      }, 250);
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("submit", (e) => { e.preventDefault(); update(); });
  };
  K.escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  /* A short unpaged list (users, vhosts, policies, permissions): sorted by the API
     (sort, sort_reverse), filtered here by name or regular expression (name,
     use_regex, as the API's paged lists; RabbitMQ does not page these), all kept in the
     query string under prefix. fetch(query) returns the items; text(item) is what the
     filter matches. */
  K.shortList = ({ path, fetch, columns, defaultSort, prefix = "", form = "#filters",
    table = "#table", count = "#count", text = (i) => i.name, empty = "Nothing here yet." }) => {
    const key = (k) => prefix + k;
    let latest = 0;
    const load = async () => {
      const mine = ++latest;
      const q = K.params();
      const sort = q.get(key("sort")) || defaultSort;
      const reverse = q.get(key("sort_reverse")) === "true";
      const query = new URLSearchParams({ sort, sort_reverse: String(reverse) }).toString();
      const items = await (fetch ? fetch(query) : K.api("GET", path + "?" + query));
      if (mine !== latest) return;
      const name = q.get(key("name")) || "";
      let matches = (t) => t.toLowerCase().includes(name.toLowerCase());
      if (name && q.get(key("use_regex")) === "true") {
        let pattern;
        try { pattern = new RegExp(name, "i"); } catch (e) { throw new Error("Not a regular expression: " + name); }
        matches = (t) => pattern.test(t);
      }
      const shown = name ? items.filter((i) => matches(text(i))) : items;
      K.fill(table, K.table(columns, shown, {
        sort, reverse, empty: name ? "No match." : empty,
        onSort: (k) => {
          K.setParams({ [key("sort")]: k, [key("sort_reverse")]: k === sort && !reverse ? "true" : "" });
          load().catch((err) => K.flash(err.message, "error"));
        },
      }));
      K.fill(count, `${K.fmt.num(shown.length)} of ${K.fmt.num(items.length)}`);
    };
    filterForm(typeof form === "string" ? K.$(form) : form, prefix, load);
    K.every(load);
    return load;
  };

  return K;
})();
