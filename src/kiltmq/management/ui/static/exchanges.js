/* Exchanges: a server-paged, sortable, filterable list kept in the query string. */
"use strict";

(() => {
  K.list({
    path: "/api/exchanges",
    byVhost: true,
    defaultSort: "name",
    columns: [
      { label: "Virtual host", value: (e) => e.vhost, sort: "vhost" },
      { label: "Name", value: (e) => K.el("a", { href: K.link.exchange(e.vhost, e.name) }, e.name || "(AMQP default)"), sort: "name" },
      { label: "Type", value: (e) => e.type, sort: "type" },
      { label: "Features", value: (e) => [e.durable ? K.badge("D", "f") : null, e.auto_delete ? K.badge("AD", "f") : null,
        e.internal ? K.badge("I", "f") : null, ...Object.keys(e.arguments || {}).map((a) => K.badge(a, "arg"))] },
      { label: "Policy", value: (e) => e.policy || "", sort: "policy" },
      { label: "In /s", value: (e) => K.fmt.rate(K.rate(e, "publish_in")), sort: "message_stats.publish_in_details.rate", num: true },
      { label: "Out /s", value: (e) => K.fmt.rate(K.rate(e, "publish_out")), sort: "message_stats.publish_out_details.rate", num: true },
    ],
  });
  K.vhosts();
  K.form("#add-exchange-form", async (v, form) => {
    await K.api("PUT", `/api/exchanges/${K.enc(v.vhost)}/${K.enc(v.name)}`, {
      type: v.type, durable: v.durable === "true", auto_delete: v.auto_delete === "true",
      internal: v.internal === "true", arguments: K.parseJson(v.arguments, "Arguments"),
    });
    K.flash(`Exchange ${v.name} added.`);
    form.reset();
    K.refreshNow();
  });
})();
