/* Connections: client, user, vhost, address, TLS, state, channels, data rates. */
"use strict";

(() => {
  const client = (c) => {
    const p = c.client_properties || {};
    return [c.user_provided_name || p.connection_name || "", p.product ? K.el("small", { class: "muted" }, ` ${p.product} ${p.version || ""}`) : ""];
  };
  K.list({
    path: "/api/connections",
    defaultSort: "name",
    columns: [
      { label: "Name", value: (c) => K.el("a", { href: K.link.connection(c.name) }, c.name), sort: "name" },
      { label: "Client", value: client, sort: "user_provided_name" },
      { label: "User", value: (c) => c.user, sort: "user" },
      { label: "Virtual host", value: (c) => c.vhost, sort: "vhost" },
      { label: "Address", value: (c) => `${c.peer_host}:${c.peer_port}`, sort: "peer_host" },
      { label: "TLS", value: (c) => (c.ssl ? K.badge(c.ssl_protocol || "TLS", "good") : "no"), sort: "ssl" },
      { label: "Protocol", value: (c) => c.protocol, sort: "protocol" },
      { label: "State", value: (c) => K.badge(c.state, c.state === "running" ? "good" : "bad"), sort: "state" },
      { label: "Channels", value: (c) => c.channels, sort: "channels", num: true },
      { label: "From client /s", value: (c) => K.fmt.bytes(Math.round((c.recv_oct_details || {}).rate || 0)), sort: "recv_oct_details.rate", num: true },
      { label: "To client /s", value: (c) => K.fmt.bytes(Math.round((c.send_oct_details || {}).rate || 0)), sort: "send_oct_details.rate", num: true },
    ],
  });
})();
