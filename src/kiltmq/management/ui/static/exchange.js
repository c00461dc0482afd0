/* An exchange's page: rates, bindings both ways, add a binding, publish, delete. */
"use strict";

(() => {
  const { vhost, name } = document.body.dataset;
  const apiName = name || "amq.default";
  const base = `/api/exchanges/${K.enc(vhost)}/${K.enc(apiName)}`;
  const rates = K.chart("#rate-chart", [{ label: "In" }, { label: "Out" }],
    { store: `exchange.${vhost}.${name}.rates`, label: "exchange message rates" });
  const dest = (b) => b.destination_type === "queue"
    ? K.el("a", { href: K.link.queue(vhost, b.destination) }, "queue ", b.destination)
    : K.el("a", { href: K.link.exchange(vhost, b.destination) }, "exchange ", b.destination);
  const unbind = (b) => K.el("button", { class: "small actions", onclick: async () => {
    const kind = b.destination_type === "queue" ? "q" : "e";
    try {
      await K.api("DELETE", `/api/bindings/${K.enc(vhost)}/e/${K.enc(b.source)}/${kind}/${K.enc(b.destination)}/${K.enc(b.properties_key)}`);
      K.flash("Binding removed.");
      K.refreshNow();
    } catch (err) { K.flash(err.message, "error"); }
  } }, "Unbind");
  const args = (b) => (Object.keys(b.arguments || {}).length ? K.el("code", {}, JSON.stringify(b.arguments)) : "");

  K.every(async () => {
    const e = await K.api("GET", base);
    K.fill("#summary", K.tile("Type", e.type), K.tile("Durable", e.durable ? "yes" : "no"),
      K.tile("Internal", e.internal ? "yes" : "no"), K.tile("Policy", e.policy || "none"),
      K.tile("In /s", K.fmt.rate(K.rate(e, "publish_in"))), K.tile("Out /s", K.fmt.rate(K.rate(e, "publish_out"))));
    rates.add([K.rate(e, "publish_in"), K.rate(e, "publish_out")]);
    if (!name) {
      K.fill("#source", K.el("p", { class: "muted" }, "The default exchange routes to the queue named by the routing key."));
      K.fill("#destination", K.el("p", { class: "muted" }, "None."));
      return;
    }
    const [src, dst] = await Promise.all([K.api("GET", base + "/bindings/source"), K.api("GET", base + "/bindings/destination")]);
    K.fill("#source", K.table([
      { label: "To", value: dest }, { label: "Routing key", value: (b) => b.routing_key },
      { label: "Arguments", value: args }, { label: "", value: unbind },
    ], src, { empty: "No bindings: messages published here are dropped (or returned when mandatory)." }));
    K.fill("#destination", K.table([
      { label: "From", value: (b) => K.el("a", { href: K.link.exchange(vhost, b.source) }, b.source) },
      { label: "Routing key", value: (b) => b.routing_key }, { label: "Arguments", value: args },
      { label: "", value: unbind },
    ], dst, { empty: "No exchange-to-exchange bindings." }));
  });

  if (!name) K.$("#bind-form").remove();
  K.form("#bind-form", async (v, form) => {
    await K.api("POST", `/api/bindings/${K.enc(vhost)}/e/${K.enc(name)}/${v.kind}/${K.enc(v.destination)}`,
      { routing_key: v.routing_key, arguments: K.parseJson(v.arguments, "Arguments") });
    K.flash(`Bound to ${v.destination}.`);
    form.reset();
    K.refreshNow();
  });
  K.publishForm("#publish", { vhost, exchange: apiName });
  const del = K.$("#delete");
  if (!name || name.startsWith("amq.")) del.closest("section").remove();
  else del.addEventListener("click", async () => {
    if (!confirm(`Delete exchange ${name}?`)) return;
    try {
      await K.api("DELETE", base);
      location.href = "/exchanges";
    } catch (err) { K.flash(err.message, "error"); }
  });
})();
