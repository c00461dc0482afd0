/* Admin pages: users and permissions, virtual hosts, policies, limits, definitions. */
"use strict";

(() => {
  const page = document.body.dataset.page;
  const del = (label, path, what) => K.el("button", { class: "small", onclick: async () => {
    if (!confirm(`Delete ${what}?`)) return;
    try {
      await K.api("DELETE", path);
      K.flash(`Deleted ${what}.`);
      K.refreshNow();
    } catch (err) { K.flash(err.message, "error"); }
  } }, label);
  const code = (v) => K.el("code", {}, JSON.stringify(v));
  const done = (message, form) => { K.flash(message); if (form) form.reset(); K.refreshNow(); K.vhosts(); };

  if (page === "admin-users") {
    let perms = [];
    K.shortList({
      defaultSort: "name",
      /* the users and the vhosts each can access */
      fetch: async (query) => {
        const [users, found] = await Promise.all([K.api("GET", "/api/users?" + query), K.api("GET", "/api/permissions")]);
        perms = found;
        for (const select of document.querySelectorAll("select.user-choice")) {
          const keep = select.value;
          K.fill(select, [...users].sort((a, b) => (a.name < b.name ? -1 : 1)).map((u) => K.el("option", { value: u.name }, u.name)));
          if (keep) select.value = keep;
        }
        return users;
      },
      columns: [
        { label: "Name", value: (u) => u.name, sort: "name" },
        { label: "Tags", value: (u) => (Array.isArray(u.tags) ? u.tags : String(u.tags || "").split(",")).filter(Boolean).map((t) => K.badge(t, "f")) },
        { label: "Can access", value: (u) => perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(", ") || K.badge("no vhosts", "warn") },
        { label: "Password", value: (u) => (u.password_hash ? "set" : "none") },
        { label: "", value: (u) => (u.name === K.user ? "" : del("Delete", `/api/users/${K.enc(u.name)}`, `user ${u.name}`)) },
      ],
    });
    K.shortList({
      path: "/api/permissions", defaultSort: "user", prefix: "permissions_", form: "#perm-filters",
      table: "#permissions", count: "#perm-count", text: (p) => `${p.user} ${p.vhost}`, empty: "No permissions.",
      columns: [
        { label: "User", value: (p) => p.user, sort: "user" }, { label: "Virtual host", value: (p) => p.vhost, sort: "vhost" },
        { label: "Configure", value: (p) => K.el("code", {}, p.configure), sort: "configure" },
        { label: "Write", value: (p) => K.el("code", {}, p.write), sort: "write" },
        { label: "Read", value: (p) => K.el("code", {}, p.read), sort: "read" },
        { label: "", value: (p) => del("Clear", `/api/permissions/${K.enc(p.vhost)}/${K.enc(p.user)}`, `permissions of ${p.user} in ${p.vhost}`) },
      ],
    });
    K.vhosts();
    K.form("#user-form", async (v, form) => {
      const data = { tags: v.tags.split(",").map((t) => t.trim()).filter(Boolean).join(",") };
      if (v.password) data.password = v.password; else data.password_hash = "";
      await K.api("PUT", `/api/users/${K.enc(v.name)}`, data);
      done(`User ${v.name} saved.`, form);
    });
    K.form("#perm-form", async (v) => {
      await K.api("PUT", `/api/permissions/${K.enc(v.vhost)}/${K.enc(v.user)}`,
        { configure: v.configure, write: v.write, read: v.read });
      done(`Permissions of ${v.user} in ${v.vhost} set.`);
    });
  }

  if (page === "admin-vhosts") {
    K.shortList({
      path: "/api/vhosts", defaultSort: "name",
      columns: [
        { label: "Name", value: (v) => K.el("a", { href: "/queues?vhost=" + K.enc(v.name) }, v.name), sort: "name" },
        { label: "Description", value: (v) => v.description || "", sort: "description" },
        { label: "Ready", value: (v) => K.fmt.num(v.messages_ready), num: true, sort: "messages_ready" },
        { label: "Unacked", value: (v) => K.fmt.num(v.messages_unacknowledged), num: true, sort: "messages_unacknowledged" },
        { label: "Publish /s", value: (v) => K.fmt.rate(K.rate(v, "publish")), num: true, sort: "message_stats.publish_details.rate" },
        { label: "Deliver /s", value: (v) => K.fmt.rate(K.rate(v, "deliver_get")), num: true, sort: "message_stats.deliver_get_details.rate" },
        { label: "", value: (v) => del("Delete", `/api/vhosts/${K.enc(v.name)}`, `virtual host ${v.name} and everything in it`) },
      ],
    });
    K.form("#vhost-form", async (v, form) => {
      await K.api("PUT", `/api/vhosts/${K.enc(v.name)}`, { description: v.description });
      done(`Virtual host ${v.name} added.`, form);
    });
  }

  if (page === "admin-policies") {
    K.shortList({
      path: `${K.adminApi}/policies`, defaultSort: "vhost", empty: "No policies.",
      columns: [
        { label: "Virtual host", value: (p) => p.vhost, sort: "vhost" }, { label: "Name", value: (p) => p.name, sort: "name" },
        { label: "Pattern", value: (p) => K.el("code", {}, p.pattern), sort: "pattern" },
        { label: "Apply to", value: (p) => p["apply-to"], sort: "apply-to" },
        { label: "Definition", value: (p) => code(p.definition) },
        { label: "Priority", value: (p) => p.priority, num: true, sort: "priority" },
        { label: "", value: (p) => del("Delete", `${K.adminApi}/policies/${K.enc(p.vhost)}/${K.enc(p.name)}`, `policy ${p.name}`) },
      ],
    });
    K.vhosts();
    K.form("#policy-form", async (v, form) => {
      await K.api("PUT", `${K.adminApi}/policies/${K.enc(v.vhost)}/${K.enc(v.name)}`, {
        pattern: v.pattern, "apply-to": v["apply-to"], priority: Number(v.priority || 0),
        definition: K.parseJson(v.definition, "Definition"),
      });
      done(`Policy ${v.name} saved.`, form);
    });
  }

  if (page === "admin-limits") {
    const rowsOf = (limits, owner) => limits.flatMap((l) => Object.entries(l.value).map(([k, n]) => ({ owner: l[owner], limit: k, value: n })));
    const limitTable = (ownerLabel, api, rows, empty) => K.table([
      { label: ownerLabel, value: (r) => r.owner }, { label: "Limit", value: (r) => r.limit },
      { label: "Value", value: (r) => (r.value < 0 ? "no limit" : r.value), num: true },
      { label: "", value: (r) => del("Clear", `${api}/${K.enc(r.owner)}/${K.enc(r.limit)}`, `${r.limit} of ${r.owner}`) },
    ], rows, { empty });
    K.every(async () => {
      const [limits, userLimits, users] = await Promise.all([
        K.api("GET", "/api/vhost-limits"), K.api("GET", "/api/user-limits"), K.api("GET", "/api/users"),
      ]);
      K.fill("#table", limitTable("Virtual host", "/api/vhost-limits", rowsOf(limits, "vhost"), "No virtual host limits."));
      K.fill("#user-table", limitTable("User", "/api/user-limits", rowsOf(userLimits, "user"), "No user limits."));
      for (const select of document.querySelectorAll("select.user-choice")) {
        const keep = select.value;
        K.fill(select, users.map((u) => K.el("option", { value: u.name }, u.name)));
        if (keep) select.value = keep;
      }
    });
    K.vhosts();
    K.form("#limit-form", async (v) => {
      await K.api("PUT", `/api/vhost-limits/${K.enc(v.vhost)}/${K.enc(v.limit)}`, { value: Number(v.value) });
      done(`${v.limit} of ${v.vhost} set.`);
    });
    K.form("#user-limit-form", async (v) => {
      await K.api("PUT", `/api/user-limits/${K.enc(v.user)}/${K.enc(v.limit)}`, { value: Number(v.value) });
      done(`${v.limit} of user ${v.user} set.`);
    });
  }

  if (page === "admin-definitions") {
    const stamp = new Date().toISOString().slice(0, 10);
    K.$("#download").href = `${K.adminApi}/definitions?download=kiltmq-definitions-${stamp}.json`;
    K.form("#upload-form", async (v, form) => {
      const text = await v.file.text();
      K.parseJson(text, "The file");
      await K.api("POST", `${K.adminApi}/definitions`, text);
      K.flash("Definitions imported.");
      form.reset();
    });
  }
})();
