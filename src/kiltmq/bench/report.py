"""Tables of benchmark results, as plain text or markdown."""

from __future__ import annotations

from kiltmq.bench.results import Report, Result
from kiltmq.bench.scenarios import SCENARIOS

__all__ = ["BUSY_CORE", "details", "memory", "render", "summary", "warnings"]

#: A generator process using more than this share of a core may be the bottleneck.
BUSY_CORE = 0.9


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def _latency(r: Result | None) -> str:
    if r is None or not r.latencies_ns:
        return ""
    return f"{_num(r.latency_ms(0.5), 2)} / {_num(r.latency_ms(0.99), 2)}"


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _pair(report: Report) -> tuple[str, str | None]:
    names = [t.name for t in report.targets if t.error is None]
    return (names[0] if names else "kiltmq"), (names[1] if len(names) > 1 else None)


def _ok(report: Report, target: str | None, key: str) -> Result | None:
    r = report.result(target, key) if target else None
    return r if r is not None and r.error is None else None


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / (1 << 20):,.0f}"


def _label(key: str) -> str:
    scenario = SCENARIOS[key]
    return (
        key if scenario.unit in ("msg/s", "bytes/msg", "bytes/conn") else f"{key} [{scenario.unit}]"
    )


def summary(report: Report, markdown: bool = False) -> str:
    """The side-by-side table: throughput, broker CPU per message, ratios, latency, RSS."""
    a, b = _pair(report)
    header = ["scenario", f"{a} msg/s"]
    if b:
        header += [f"{b} msg/s", f"{a}/{b}"]
    header += [f"{a} CPU µs/msg"]
    if b:
        header += [f"{b} CPU µs/msg", "CPU ratio"]
    header += [f"{a} p50/p99 ms"]
    if b:
        header += [f"{b} p50/p99 ms"]
    header += [f"{a} RSS MiB"]
    if b:
        header += [f"{b} RSS MiB"]
    rows: list[list[str]] = []
    for key in report.options.only:
        if SCENARIOS[key].kind != "flow":
            continue
        ra, rb = _ok(report, a, key), _ok(report, b, key)
        rate_a = ra.rate if ra else None
        cpu_a = ra.broker_us_per_msg if ra else None
        row = [_label(key), _num(rate_a)]
        if b:
            rate_b = rb.rate if rb else None
            cpu_b = rb.broker_us_per_msg if rb else None
            row += [_num(rate_b), _ratio(rate_a, rate_b)]
        row += [_num(cpu_a, 1)]
        if b:
            row += [_num(cpu_b, 1), _ratio(cpu_a, cpu_b)]
        row += [_latency(ra)]
        if b:
            row += [_latency(rb)]
        row += [_mib(ra.broker_rss if ra else None)]
        if b:
            row += [_mib(rb.broker_rss if rb else None)]
        rows.append(row)
    return _table(header, rows, markdown) if rows else ""


def memory(report: Report, markdown: bool = False) -> str:
    """The memory scenarios: RSS growth per queued message or per connection, and which
    broker process each target's figures come from."""
    a, b = _pair(report)
    header = ["scenario", f"{a} bytes"]
    if b:
        header += [f"{b} bytes", f"{a}/{b}"]
    rows = []
    for key in report.options.only:
        scenario = SCENARIOS[key]
        if scenario.kind == "flow":
            continue
        ra, rb = _ok(report, a, key), _ok(report, b, key)
        per_a = ra.memory_per if ra else None
        row = [f"{key} ({scenario.unit.split('/')[1]})", _num(per_a)]
        if b:
            per_b = rb.memory_per if rb else None
            row += [_num(per_b), _ratio(per_a, per_b)]
        rows.append(row)
    if not rows:
        return ""
    where = [
        f"{t.name} measured on {t.memory_note}."
        for t in report.targets
        if t.error is None and t.memory_note
    ]
    return "\n".join([_table(header, rows, markdown), *(["", *where] if where else [])])


def details(report: Report, markdown: bool = False) -> str:
    """Per run: rates, CPU shares, generator cost and the message accounting."""
    header = [
        "run",
        "counted/s",
        "published/s",
        "broker cores",
        "broker µs/msg",
        "generator µs/msg",
        "producer/consumer cores",
        "other cores",
        "published",
        "accounted",
    ]
    rows = []
    for r in report.results:
        rows.append(
            [
                f"{r.scenario} {r.target}",
                _num(r.rate),
                _num(r.publish_rate),
                _num(r.broker_cores, 2),
                _num(r.broker_us_per_msg, 1),
                _num(r.generator_us_per_msg, 1),
                " / ".join(
                    f"{r.generator_parts.get(p, 0.0) / r.window:.2f}" if r.window else "n/a"
                    for p in ("producer", "consumer")
                ),
                _num(r.other_cores, 2),
                f"{r.published:,}",
                f"{r.accounted:,}" + ("" if r.accounted_ok else " (!)"),
            ]
        )
    return _table(header, rows, markdown)


def warnings(report: Report) -> list[str]:
    out = []
    for t in report.targets:
        if t.error:
            out.append(f"{t.name} skipped: {t.error}")
        elif t.pid is None:
            out.append(f"{t.name}: broker process not found; its CPU is not measured")
    for r in report.results:
        where = f"{r.scenario} {r.target}"
        if r.error:
            out.append(f"{where} failed: {r.error}")
            continue
        if r.generator_busiest > BUSY_CORE:
            out.append(
                f"{where}: a generator process used {r.generator_busiest:.0%} of a core; "
                "the generator may be the bottleneck"
            )
        if not r.memory_settled:
            out.append(
                f"{where}: the broker's memory did not settle within "
                f"{report.options.memory_settle:g} s; the figure is doubtful"
            )
        if not r.accounted_ok:
            out.append(
                f"{where}: {r.published:,} published should give {r.expected:,}, "
                f"saw {r.accounted:,}"
            )
    return out


def render(report: Report, markdown: bool = False) -> str:
    opts = report.options
    machine = ", ".join(f"{k}: {v}" for k, v in report.machine.items())
    lines = [
        f"{report.started:%Y-%m-%d %H:%M} UTC; {machine}",
        f"{opts.warmup:g} s warm-up + {opts.seconds:g} s measured per scenario; "
        f"at most {opts.max_in_flight:,} deliveries in flight"
        + (f"; median of {opts.repeat} runs" if opts.repeat > 1 else "")
        + ("; kiltmq with its management API" if opts.management else ""),
    ]
    for part in (summary(report, markdown), memory(report, markdown), details(report, markdown)):
        if part:
            lines += ["", part]
    notes = warnings(report)
    if notes:
        lines.append("")
        lines += [("- " if markdown else "warning: ") + note for note in notes]
    return "\n".join(lines)
