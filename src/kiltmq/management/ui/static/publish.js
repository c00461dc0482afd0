/* The publish form of the exchange and queue pages: routing key, delivery mode and the
   other basic properties, headers, payload (string or base64). */
"use strict";

K.publishForm = (container, { vhost, exchange, routingKey }) => {
  const input = (name, label, attrs = {}) =>
    K.el("label", {}, label, " ", K.el("input", { name, ...attrs }));
  const form = K.el("form", { class: "form publish", id: "publish-form" },
    routingKey === undefined ? input("routing_key", "Routing key") : null,
    K.el("label", {}, "Delivery mode ", K.el("select", { name: "delivery_mode" },
      K.el("option", { value: "2" }, "2 – persistent"), K.el("option", { value: "1" }, "1 – transient"))),
    K.el("label", {}, "Headers ", K.el("textarea", { name: "headers", placeholder: '{"x-origin": "web"}', rows: 2 })),
    K.el("label", {}, "Properties ", K.el("textarea", { name: "properties", rows: 2,
      placeholder: '{"content_type": "application/json", "correlation_id": "c1", "expiration": "60000"}' })),
    K.el("label", {}, "Payload ", K.el("textarea", { name: "payload", rows: 4 })),
    K.el("label", {}, "Payload encoding ", K.el("select", { name: "payload_encoding" },
      K.el("option", { value: "string" }, "string"), K.el("option", { value: "base64" }, "base64"))),
    K.el("button", { class: "primary" }, "Publish message"));
  K.fill(container, form);
  K.form(form, async (v) => {
    const properties = K.parseJson(v.properties, "Properties");
    const headers = K.parseJson(v.headers, "Headers");
    if (Object.keys(headers).length) properties.headers = headers;
    properties.delivery_mode = Number(v.delivery_mode);
    const reply = await K.api("POST", `/api/exchanges/${K.enc(vhost)}/${K.enc(exchange)}/publish`, {
      routing_key: routingKey === undefined ? v.routing_key : routingKey,
      properties, payload: v.payload, payload_encoding: v.payload_encoding,
    });
    K.flash(reply.routed ? "Message published." : "Message published, but not routed to any queue.",
      reply.routed ? "ok" : "warn");
    K.refreshNow();
  });
};
