/* A connection's page: data rates, details, client properties, channels, close. */
"use strict";

(() => {
  const { name } = document.body.dataset;
  const base = `/api/connections/${K.enc(name)}`;
  const rates = K.chart("#rate-chart", [{ label: "From client" }, { label: "To client" }],
    { store: `connection.${name}`, format: (v) => K.fmt.bytes(Math.round(v)), whole: true, label: "data rates" });
  let first = true;
  K.every(async () => {
    let c;
    try {
      c = await K.api("GET", base + (first ? K.history.query("data_rates") : ""));
    } catch (err) {
      if (err.status === 404) {
        K.fill("#summary", K.el("p", { class: "error" }, "This connection is closed."));
        return;
      }
      throw err;
    }
    K.fill("#summary", K.tile("User", c.user), K.tile("Virtual host", c.vhost),
      K.tile("State", c.state, c.state === "running" ? "good" : "bad"), K.tile("Channels", c.channels),
      K.tile("TLS", c.ssl ? c.ssl_protocol || "yes" : "no"));
    if (first) {  /* the chart starts with the broker's last ten minutes */
      first = false;
      rates.load(K.history.rates(c, ["recv_oct", "send_oct"]));
    }
    rates.add([(c.recv_oct_details || {}).rate || 0, (c.send_oct_details || {}).rate || 0]);
    K.fill("#details", K.kv([
      ["Client", c.user_provided_name || "–"], ["Address", `${c.peer_host}:${c.peer_port}`],
      ["Broker side", `${c.host}:${c.port}`], ["Protocol", c.protocol], ["Auth", c.auth_mechanism],
      ["Heartbeat", `${c.timeout} s`], ["Frame max", K.fmt.num(c.frame_max)], ["Channel max", K.fmt.num(c.channel_max)],
      ["Connected", new Date(c.connected_at).toLocaleString()],
      ["Received", K.fmt.bytes(c.recv_oct)], ["Sent", K.fmt.bytes(c.send_oct)],
    ]));
    const props = c.client_properties || {};
    K.fill("#client", K.kv(Object.entries(props).map(([k, v]) =>
      [k, typeof v === "object" ? K.el("code", {}, JSON.stringify(v)) : String(v)])));
    const channels = await K.api("GET", base + "/channels");
    K.fill("#channels", K.table([
      { label: "Channel", value: (ch) => ch.number, num: true },
      { label: "Mode", value: (ch) => [ch.confirm ? K.badge("confirm", "f") : null, ch.transactional ? K.badge("tx", "f") : null] },
      { label: "Consumers", value: (ch) => ch.consumer_count, num: true },
      { label: "Prefetch", value: (ch) => ch.prefetch_count || "∞", num: true },
      { label: "Unacked", value: (ch) => ch.messages_unacknowledged, num: true },
      { label: "Unconfirmed", value: (ch) => ch.messages_unconfirmed, num: true },
      { label: "Publish /s", value: (ch) => K.fmt.rate(K.rate(ch, "publish")), num: true },
      { label: "Deliver /s", value: (ch) => K.fmt.rate(K.rate(ch, "deliver_get")), num: true },
    ], channels, { empty: "No channels." }));
  });
  K.form("#close-form", async (v) => {
    if (!confirm(`Close connection ${name}?`)) return;
    await K.api("DELETE", base, undefined, { headers: { "X-Reason": v.reason } });
    K.flash("Connection closed.");
    K.refreshNow();
  });
})();
