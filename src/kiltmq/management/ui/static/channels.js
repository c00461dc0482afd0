/* Channels: prefetch, unacked, confirms and rates of every channel the user may see. */
"use strict";

(() => {
  const mode = (c) => [c.confirm ? K.badge("confirm", "f") : null, c.transactional ? K.badge("tx", "f") : null];
  K.list({
    path: "/api/channels",
    defaultSort: "name",
    columns: [
      { label: "Channel", value: (c) => K.el("a", { href: K.link.connection(c.connection_details.name) }, c.name), sort: "name" },
      { label: "User", value: (c) => c.user, sort: "user" },
      { label: "Virtual host", value: (c) => c.vhost, sort: "vhost" },
      { label: "Mode", value: mode, sort: "confirm" },
      { label: "State", value: (c) => c.state, sort: "state" },
      { label: "Consumers", value: (c) => c.consumer_count, sort: "consumer_count", num: true },
      { label: "Prefetch", value: (c) => c.prefetch_count || "∞", sort: "prefetch_count", num: true },
      { label: "Unacked", value: (c) => K.fmt.num(c.messages_unacknowledged), sort: "messages_unacknowledged", num: true },
      { label: "Unconfirmed", value: (c) => K.fmt.num(c.messages_unconfirmed), sort: "messages_unconfirmed", num: true },
      { label: "Publish /s", value: (c) => K.fmt.rate(K.rate(c, "publish")), sort: "message_stats.publish_details.rate", num: true },
      { label: "Deliver /s", value: (c) => K.fmt.rate(K.rate(c, "deliver_get")), sort: "message_stats.deliver_get_details.rate", num: true },
      { label: "Ack /s", value: (c) => K.fmt.rate(K.rate(c, "ack")), sort: "message_stats.ack_details.rate", num: true },
    ],
  });
})();
