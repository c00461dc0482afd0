/* Queues: a server-paged, sortable, filterable list kept in the query string. */
"use strict";

(() => {
  const ms = (q, key) => K.fmt.rate(K.rate(q, key));
  const state = (q) => K.badge(q.state || "running", q.state === "running" || !q.state ? "good" : "bad");
  const features = (q) => [
    q.durable ? K.badge("D", "f", ) : null,
    q.auto_delete ? K.badge("AD", "f") : null,
    q.exclusive ? K.badge("Excl", "f") : null,
    ...Object.keys(q.arguments || {}).map((a) => K.badge(a.replace(/^x-/, ""), "arg")),
  ];
  const policy = (q) => q.policy ? K.el("a", { href: "/admin/policies?use_regex=true&name=" + K.enc("^" + K.escapeRegex(q.policy) + "$") }, q.policy)
    : q.operator_policy || "";
  K.list({
    path: "/api/queues",
    byVhost: true,
    defaultSort: "name",
    wanted: ["name", "vhost", "type", "state", "durable", "auto_delete", "exclusive", "arguments",
      "policy", "operator_policy", "consumers", "messages", "messages_ready", "messages_unacknowledged",
      "message_stats.publish_details", "message_stats.deliver_get_details", "message_stats.ack_details"],
    columns: [
      { label: "Virtual host", value: (q) => q.vhost, sort: "vhost" },
      { label: "Name", value: (q) => K.el("a", { href: K.link.queue(q.vhost, q.name) }, q.name), sort: "name" },
      { label: "Type", value: (q) => q.type, sort: "type" },
      { label: "Features", value: features },
      { label: "Policy", value: policy, sort: "policy" },
      { label: "State", value: state, sort: "state" },
      { label: "Consumers", value: K.consumers, sort: "consumers", num: true },
      { label: "Ready", value: (q) => K.fmt.num(q.messages_ready), sort: "messages_ready", num: true },
      { label: "Unacked", value: (q) => K.fmt.num(q.messages_unacknowledged), sort: "messages_unacknowledged", num: true },
      { label: "Total", value: (q) => K.fmt.num(q.messages), sort: "messages", num: true },
      { label: "In /s", value: (q) => ms(q, "publish"), sort: "message_stats.publish_details.rate", num: true },
      { label: "Out /s", value: (q) => ms(q, "deliver_get"), sort: "message_stats.deliver_get_details.rate", num: true },
      { label: "Ack /s", value: (q) => ms(q, "ack"), sort: "message_stats.ack_details.rate", num: true },
    ],
  });
  K.vhosts();
  if (K.readonly) K.$("#add-queue").remove();
  K.form("#add-queue-form", async (v, form) => {
    await K.api("PUT", `/api/queues/${K.enc(v.vhost)}/${K.enc(v.name)}`, {
      durable: v.durable === "true", auto_delete: v.auto_delete === "true",
      arguments: K.parseJson(v.arguments, "Arguments"),
    });
    K.flash(`Queue ${v.name} added.`);
    form.reset();
    K.refreshNow();
  });
})();
