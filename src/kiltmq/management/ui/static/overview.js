/* Overview: totals, live message rates and queued messages, the node's memory and disk
   against their alarms, listeners, version and uptime. */
"use strict";

(() => {
  const rates = K.chart("#rates-chart", [
    { key: "publish", label: "Published" },
    { key: "deliver_get", label: "Delivered" },
    { key: "ack", label: "Acknowledged" },
    { key: "redeliver", label: "Redelivered" },
    { key: "confirm", label: "Confirmed" },
    { key: "return_unroutable", label: "Returned" },
  ], { store: "overview.rates", label: "message rates" });
  const queued = K.chart("#queued-chart", [
    { label: "Ready" }, { label: "Unacknowledged" }, { label: "Total" },
  ], { store: "overview.queued", format: K.fmt.num, whole: true, label: "queued messages" });
  const keys = ["publish", "deliver_get", "ack", "redeliver", "confirm", "return_unroutable"];

  const gauge = (label, used, limit, alarm, lowIsBad) => {
    const share = limit ? Math.min(1, lowIsBad ? limit / Math.max(used, 1) : used / limit) : 0;
    const bar = K.el("span", { class: "fill" + (alarm ? " alarm" : share > 0.8 ? " warn" : "") });
    bar.style.width = (share * 100).toFixed(1) + "%";
    return K.el("div", { class: "gauge" + (alarm ? " alarm" : "") },
      K.el("div", { class: "gauge-head" }, K.el("b", {}, label), alarm ? K.badge("ALARM", "bad") : K.badge("ok", "good")),
      K.el("div", { class: "bar" }, bar),
      K.el("small", {}, lowIsBad
        ? `${K.fmt.bytes(used)} free · alarm below ${K.fmt.bytes(limit)}`
        : `${K.fmt.bytes(used)} used · ${limit ? "alarm at " + K.fmt.bytes(limit) : "no memory limit set"}`));
  };

  let first = true;
  K.every(async () => {
    const o = await K.api("GET", "/api/overview" + (first ? K.history.query("lengths", "msg_rates") : ""));
    const t = o.object_totals, qt = o.queue_totals || {};
    if (first) {  /* the charts start with the broker's last ten minutes */
      first = false;
      rates.load(K.history.rates(o.message_stats, keys));
      queued.load(K.history.lengths(qt, ["messages_ready", "messages_unacknowledged", "messages"]));
    }
    const link = (href, label, value) => K.el("a", { href, class: "tile-link" }, K.tile(label, K.fmt.num(value)));
    K.fill("#totals",
      link("/connections", "Connections", t.connections),
      link("/channels", "Channels", t.channels),
      link("/exchanges", "Exchanges", t.exchanges),
      link("/queues", "Queues", t.queues),
      // the consumer count is for monitoring and administrator users, as in RabbitMQ
      t.consumers === undefined ? null
        : link("/queues?sort=consumers&sort_reverse=true", "Consumers", t.consumers),
      link("/queues?sort=messages_ready&sort_reverse=true", "Ready", qt.messages_ready || 0),
      link("/queues?sort=messages_unacknowledged&sort_reverse=true", "Unacked", qt.messages_unacknowledged || 0));
    rates.add(keys.map((k) => K.rate(o, k)));
    queued.add([qt.messages_ready || 0, qt.messages_unacknowledged || 0, qt.messages || 0]);
    K.fill("#listeners", o.listeners
      ? K.table([
          { label: "Protocol", value: (l) => l.protocol },
          { label: "Address", value: (l) => l.ip_address },
          { label: "Port", value: (l) => l.port, num: true },
        ], o.listeners)
      : K.el("p", { class: "muted" }, "Shown to monitoring and administrator users."));
    const deepest = await K.api("GET", "/api/queues?page=1&page_size=5&sort=messages&sort_reverse=true" +
      "&columns=name,vhost,messages,messages_ready,messages_unacknowledged,consumers,message_stats.publish_details,message_stats.deliver_get_details");
    K.fill("#deepest", K.table([
      { label: "Queue", value: (q) => K.el("a", { href: K.link.queue(q.vhost, q.name) }, q.name) },
      { label: "Virtual host", value: (q) => q.vhost },
      { label: "Ready", value: (q) => K.fmt.num(q.messages_ready), num: true },
      { label: "Unacked", value: (q) => K.fmt.num(q.messages_unacknowledged), num: true },
      { label: "Consumers", value: K.consumers, num: true },
      { label: "In /s", value: (q) => K.fmt.rate(K.rate(q, "publish")), num: true },
      { label: "Out /s", value: (q) => K.fmt.rate(K.rate(q, "deliver_get")), num: true },
    ], deepest.items.filter((q) => q.messages > 0), { empty: "Every queue is empty." }));
    if (!K.isMonitor) {
      K.fill("#node", K.kv([["Version", `kiltmq ${o.product_version} (RabbitMQ ${o.rabbitmq_version} API)`]]));
      return;
    }
    const n = await K.api("GET", "/api/nodes/" + K.enc(o.node));
    const alarms = [n.mem_alarm ? "memory" : null, n.disk_free_alarm ? "disk" : null].filter(Boolean);
    K.fill("#alarms", alarms.length ? K.el("p", { class: "alarm-banner", role: "alert" },
      `Resource alarm (${alarms.join(", ")}): publishers are blocked until it clears.`) : null);
    K.fill("#node",
      gauge("Memory", n.mem_used, n.mem_limit, n.mem_alarm, false),
      gauge("Disk", n.disk_free, n.disk_free_limit, n.disk_free_alarm, true),
      K.kv([
        ["Version", `kiltmq ${o.product_version} (RabbitMQ ${o.rabbitmq_version} API)`],
        ["Node", o.node],
        ["Uptime", K.fmt.duration(n.uptime)],
        ["File descriptors", `${K.fmt.num(n.fd_used)} of ${K.fmt.num(n.fd_total)}`],
        ["Processors", n.processors],
      ]));
  });
})();
