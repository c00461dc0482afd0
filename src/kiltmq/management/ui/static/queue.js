/* A queue's page: depth and rate charts, details, consumers, bindings, get messages,
   publish, move, purge and delete. */
"use strict";

(() => {
  const { vhost, name } = document.body.dataset;
  const base = `/api/queues/${K.enc(vhost)}/${K.enc(name)}`;
  const depth = K.chart("#depth-chart", [{ label: "Ready" }, { label: "Unacked" }, { label: "Total" }],
    { store: `queue.${vhost}.${name}.depth`, format: K.fmt.num, whole: true, label: "queue depth" });
  const rateKeys = ["publish", "deliver_get", "ack", "redeliver"];
  const rates = K.chart("#rate-chart", [{ label: "In" }, { label: "Out" }, { label: "Ack" }, { label: "Redelivered" }],
    { store: `queue.${vhost}.${name}.rates`, label: "queue message rates" });

  const json = (v) => K.el("code", {}, JSON.stringify(v));
  const table = (obj) => Object.keys(obj || {}).length
    ? K.kv(Object.entries(obj).map(([k, v]) => [k, typeof v === "object" ? json(v) : String(v)])) : "none";

  const unbind = (b) => K.el("button", { class: "small actions", onclick: async () => {
    try {
      await K.api("DELETE", `/api/bindings/${K.enc(vhost)}/e/${K.enc(b.source)}/q/${K.enc(name)}/${K.enc(b.properties_key)}`);
      K.flash("Binding removed.");
      K.refreshNow();
    } catch (err) { K.flash(err.message, "error"); }
  } }, "Unbind");

  let first = true;
  K.every(async () => {
    let q;
    try {
      q = await K.api("GET", base + (first ? K.history.query("lengths", "msg_rates") : ""));
    } catch (err) {
      if (err.status === 404) {
        K.fill("#summary", K.el("p", { class: "error" }, "This queue does not exist (any more)."));
        return;
      }
      throw err;
    }
    K.fill("#summary",
      K.tile("Ready", K.fmt.num(q.messages_ready)),
      K.tile("Unacked", K.fmt.num(q.messages_unacknowledged)),
      K.tile("Total", K.fmt.num(q.messages)),
      K.tile("Bytes", K.fmt.bytes(q.message_bytes)),
      K.tile("Consumers", K.fmt.num(q.consumers)),
      K.tile("State", q.state || "running", q.state && q.state !== "running" ? "bad" : "good"));
    if (first) {  /* the charts start with the broker's last ten minutes */
      first = false;
      depth.load(K.history.lengths(q, ["messages_ready", "messages_unacknowledged", "messages"]));
      rates.load(K.history.rates(q.message_stats, rateKeys));
    }
    depth.add([q.messages_ready, q.messages_unacknowledged, q.messages]);
    rates.add(rateKeys.map((k) => K.rate(q, k)));
    K.fill("#details", K.kv([
      ["Type", q.type], ["Durable", String(q.durable)], ["Auto delete", String(q.auto_delete)],
      ["Exclusive", q.exclusive ? `yes (${(q.owner_pid_details || {}).name || ""})` : "no"],
      ["Arguments", table(q.arguments)],
      ["Policy", q.policy || "none"], ["Operator policy", q.operator_policy || "none"],
      ["Effective policy definition", table(q.effective_policy_definition)],
      ["Exclusive consumer", q.exclusive_consumer_tag || "none"],
      ["Node", q.node],
    ]));
    K.fill("#consumers", K.table([
      { label: "Consumer tag", value: (c) => c.consumer_tag },
      { label: "Channel", value: (c) => K.el("a", { href: K.link.connection(c.channel_details.connection_name) }, c.channel_details.name) },
      { label: "User", value: (c) => c.channel_details.user },
      { label: "Ack required", value: (c) => (c.ack_required ? "yes" : "no") },
      { label: "Exclusive", value: (c) => (c.exclusive ? "yes" : "no") },
      { label: "Prefetch", value: (c) => c.prefetch_count, num: true },
      { label: "Active", value: (c) => K.badge(c.activity_status, c.active ? "good" : "") },
    ], q.consumer_details || [], { empty: "No consumers." }));
    const bindings = await K.api("GET", base + "/bindings");
    K.fill("#bindings", K.table([
      { label: "From", value: (b) => b.source ? K.el("a", { href: K.link.exchange(vhost, b.source) }, b.source) : "(AMQP default)" },
      { label: "Routing key", value: (b) => b.routing_key },
      { label: "Arguments", value: (b) => (Object.keys(b.arguments || {}).length ? json(b.arguments) : "") },
      { label: "", value: (b) => (b.source ? unbind(b) : "") },
    ], bindings));
  });

  K.api("GET", `/api/exchanges/${K.enc(vhost)}?columns=name`).then((list) =>
    K.fill("#exchange-names", list.filter((e) => e.name).map((e) => K.el("option", { value: e.name })))).catch(() => {});

  K.form("#bind-form", async (v, form) => {
    await K.api("POST", `/api/bindings/${K.enc(vhost)}/e/${K.enc(v.source)}/q/${K.enc(name)}`,
      { routing_key: v.routing_key, arguments: K.parseJson(v.arguments, "Arguments") });
    K.flash(`Bound to ${v.source}.`);
    form.reset();
    K.refreshNow();
  });

  /* An AMQP timestamp as the API gives it (seconds since the epoch, as RabbitMQ); any
     other value is shown as it came. */
  const when = (t) => {
    if (t === undefined || t === null || t === "") return "";
    const date = typeof t === "number" ? new Date(t * 1000) : null;
    return date && !isNaN(date) ? date.toISOString().replace(".000Z", "Z") : String(t);
  };

  const message = (m, i) => {
    const p = { ...m.properties };
    const headers = p.headers || {};
    delete p.headers;
    const deaths = Array.isArray(headers["x-death"]) ? headers["x-death"] : [];
    const shownHeaders = { ...headers };
    delete shownHeaders["x-death"];
    return K.el("article", { class: "message" },
      K.el("header", {}, K.el("b", {}, `Message ${i + 1}`),
        m.redelivered ? K.badge("redelivered", "warn") : K.badge("first delivery", ""),
        ` from exchange ${m.exchange || "(AMQP default)"}, routing key ${m.routing_key} · ${m.message_count} left in queue`),
      K.kv([
        ["Properties", table(p)],
        ["Headers", table(shownHeaders)],
        ["x-death", deaths.length ? K.table([
          { label: "Count", value: (d) => d.count, num: true },
          { label: "Reason", value: (d) => d.reason },
          { label: "Queue", value: (d) => d.queue },
          { label: "Exchange", value: (d) => d.exchange },
          { label: "Routing keys", value: (d) => (d["routing-keys"] || []).join(", ") },
          { label: "Time", value: (d) => when(d.time) },
        ], deaths) : "none"],
        [`Payload (${K.fmt.num(m.payload_bytes)} bytes, ${m.payload_encoding})`, K.el("pre", { class: "payload" }, m.payload)],
      ]));
  };

  K.form("#get-form", async (v) => {
    const got = await K.api("POST", base + "/get",
      { count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding, truncate: 50000 });
    K.fill("#messages", got.length ? got.map(message) : K.el("p", { class: "muted" }, "Queue is empty."));
    K.refreshNow();
  });

  K.publishForm("#publish", { vhost, exchange: "amq.default", routingKey: name });

  K.form("#move-form", async (v) => {
    const target = v.target;
    if (target === name) throw new Error("Choose another queue.");
    await K.api("GET", `/api/queues/${K.enc(vhost)}/${K.enc(target)}?columns=name`);
    const before = (await K.api("GET", base + "?columns=messages_ready")).messages_ready || 0;
    const shovel = `Move from ${name}`;
    const uri = "amqp:///" + K.enc(vhost);
    const path = `/api/parameters/shovel/${K.enc(vhost)}/${K.enc(shovel)}`;
    await K.api("PUT", path, { value: {
      "src-protocol": "amqp091", "src-uri": uri, "src-queue": name,
      "dest-protocol": "amqp091", "dest-uri": uri, "dest-queue": target,
      "src-delete-after": Number(v.count), "ack-mode": "on-confirm",
    } });
    // the broker moves the messages; the parameter goes away when it is done
    for (;;) {
      const running = await K.api("GET", `/api/shovels/${K.enc(vhost)}?name=${K.enc(shovel)}`);
      const mine = running.find((s) => s.name === shovel);
      if (!mine) break;
      if (mine.state === "terminated") {
        await K.api("DELETE", path);
        throw new Error(`Move stopped: ${mine.reason}`);
      }
      await new Promise((done) => setTimeout(done, 200));
    }
    const moved = Math.min(Number(v.count), before);
    K.flash(`Moved ${moved} message${moved === 1 ? "" : "s"} to ${target}.`);
    K.refreshNow();
  });

  K.$("#purge").addEventListener("click", async () => {
    if (!confirm(`Purge every ready message of ${name}?`)) return;
    try {
      await K.api("DELETE", base + "/contents");
      K.flash("Queue purged.");
      K.refreshNow();
    } catch (err) { K.flash(err.message, "error"); }
  });
  K.$("#delete").addEventListener("click", async () => {
    if (!confirm(`Delete queue ${name} and its messages?`)) return;
    try {
      await K.api("DELETE", base);
      location.href = "/queues";
    } catch (err) { K.flash(err.message, "error"); }
  });
})();
