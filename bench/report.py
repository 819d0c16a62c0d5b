#!/usr/bin/env python3
"""Prints the table of bench/results/*.json (median of the measured runs, with their
spread) against the targets, and draws the latency distributions as an SVG chart."""
import json
import math
import os
import statistics
import sys

results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")


def load(name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def spread(values, fmt="{:,.0f}"):
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def runs(doc, key):
    return [r[key] for r in doc.get("runs", [])]


def lat(doc, q):
    return [r["latency"][q] for r in doc.get("runs", [])]


rows = []


def add_usage(doc, who="chatd"):
    """The server's CPU seconds and peak resident memory over the whole scenario."""
    if doc and "server_cpu_seconds_total" in doc:
        rows.append((f"  {who}: CPU over the scenario / peak RSS", "s / MiB",
                     f"{doc['server_cpu_seconds_total']:,.1f} / {doc['server_peak_rss_kib'] / 1024:,.1f}", ""))


fan = load("fanout-max")
if fan:
    rows.append(("Fan-out, 1,000 members, as fast as it goes", "deliveries/s",
                 spread(runs(fan, "deliveries_per_second")), ">= 1,000,000"))
    rows.append(("  per server core-second", "deliveries",
                 spread(runs(fan, "deliveries_per_server_core_second")), ""))
    rows.append(("  send -> last member, p50 / p99", "ms",
                 f"{spread(lat(fan, 'p50_ms'), '{:.1f}')} / {spread(lat(fan, 'p99_ms'), '{:.1f}')}", ""))
    rows.append(("  every delivery checked", "", "ok" if fan["check"]["ok"] else f"FAILED {fan['check']}", "ok"))
    add_usage(fan)
relay = load("relay-max")
if relay:
    rows.append(("Fan-out through a bare relay (the limit)", "deliveries/s",
                 spread(runs(relay, "deliveries_per_second")), ""))
    rows.append(("  send -> last member, p50 / p99", "ms",
                 f"{spread(lat(relay, 'p50_ms'), '{:.1f}')} / {spread(lat(relay, 'p99_ms'), '{:.1f}')}", ""))
    if fan:
        share = statistics.median(runs(fan, "deliveries_per_second")) / statistics.median(
            runs(relay, "deliveries_per_second"))
        rows.append(("  chatd as a share of the relay", "", f"{share:.0%}", ""))
    add_usage(relay, "the relay")
relay_paced = load("relay-paced")
if relay_paced:
    rows.append(("Bare relay paced at 500,000/s", "deliveries/s",
                 spread(runs(relay_paced, "deliveries_per_second")), ""))
    rows.append(("  send -> last member, p50 / p99", "ms",
                 f"{spread(lat(relay_paced, 'p50_ms'), '{:.1f}')} / {spread(lat(relay_paced, 'p99_ms'), '{:.1f}')}", ""))
    add_usage(relay_paced, "the relay")
for paced in (load("fanout-paced-100k"), load("fanout-paced")):
    if not paced:
        continue
    target = paced["target_deliveries_per_second"]
    goal = target == 500000
    rows.append((f"Fan-out paced at {target:,.0f}/s", "deliveries/s",
                 spread(runs(paced, "deliveries_per_second")), "500,000" if goal else ""))
    rows.append(("  send -> last member, p50", "ms", spread(lat(paced, "p50_ms"), "{:.1f}"), "<= 10" if goal else ""))
    rows.append(("  send -> last member, p99", "ms", spread(lat(paced, "p99_ms"), "{:.1f}"), "<= 25" if goal else ""))
    kept_up = all(r["complete"] for r in paced["runs"])
    rows.append(("  all delivered within the run (+30 s)", "", "yes" if kept_up else "no: the server fell behind", "yes"))
    check = paced["check"]
    if check["ok"]:
        verdict = "ok"
    elif not kept_up and check["out_of_order"] == 0 and check["unrecognised"] == 0:
        verdict = "in order; still in flight when measured"
    else:
        verdict = f"FAILED {check}"
    rows.append(("  every delivery checked", "", verdict, "ok"))
    add_usage(paced)
for name, label, target in (("ingest-sqlite", "Ingest, SQLite", ">= 30,000"),
                            ("ingest-sqlite-paced-3k", "Ingest, SQLite", ""),
                            ("ingest-sqlite-paced-5k", "Ingest, SQLite", ""),
                            ("ingest-postgres", "Ingest, PostgreSQL", ">= 15,000"),
                            ("ingest-postgres-paced-3k", "Ingest, PostgreSQL", "")):
    doc = load(name)
    if not doc:
        continue
    rate = doc.get("target_messages_per_second", 0)
    how = f"paced at {rate:,.0f}/s" if rate else "as fast as it goes"
    rows.append((f"{label}, {doc['senders']:,} senders, {how}", "messages/s",
                 spread(runs(doc, "messages_per_second")), target))
    rows.append(("  commit (send -> acknowledgement) p50 / p99", "ms",
                 f"{spread(lat(doc, 'p50_ms'), '{:.1f}')} / {spread(lat(doc, 'p99_ms'), '{:.1f}')}",
                 "p99 <= 10"))
    rows.append(("  per server core-second", "messages",
                 spread(runs(doc, "messages_per_server_core_second")), ""))
    add_usage(doc)
hist = load("history")
if hist:
    rows.append((f"History pages of {hist['page_size']} over {hist['messages_in_chat']:,} messages", "requests/s",
                 spread(runs(hist, "requests_per_second")), ">= 20,000"))
    rows.append(("  request latency p99", "ms", spread(lat(hist, "p99_ms"), "{:.1f}"), "<= 10"))
    bad = sum(r["bad_pages"] for r in hist["runs"])
    rows.append(("  every page checked", "", "ok" if bad == 0 else f"{bad} bad pages", "ok"))
    add_usage(hist)
for name in ("search", "search-100-chats"):
    search = load(name)
    if not search:
        continue
    chats = search.get("searcher_chats", 1)
    rows.append((f"Search over {search['fill_messages']:,} messages of others "
                 f"({search['words_per_message']} words each), one match"
                 + (f", searcher in {chats} chats" if chats > 1 else ""), "", "", ""))
    for q in search["queries"]:
        rows.append((f"  q={q['q']}: requests/s, p99 ms", "requests/s, ms",
                     f"{spread([r['requests_per_second'] for r in q['runs']])} / "
                     f"{spread([r['latency']['p99_ms'] for r in q['runs']], '{:.1f}')}", ""))
    bad = sum(r["bad_answers"] for q in search["queries"] for r in q["runs"])
    rows.append(("  every answer checked (the one match)", "", "ok" if bad == 0 else f"{bad} bad answers", "ok"))
    add_usage(search)
idle = load("idle")
if idle:
    rows.append((f"Idle sockets ({idle['sockets']:,}, two chats each)", "KiB RSS/socket",
                 f"{idle['server_rss_kib_per_socket']:.2f}", "<= 6"))
    rows.append((f"  CPU while idle ({idle['idle_seconds']:.0f} s, pings every 10 s)", "cores", f"{idle['server_cores_while_idle']:.4f}", "<= 0.05"))
    rows.append(("  for 1,000,000 sockets", "GiB / cores",
                 f"{idle['projected_rss_gib_for_1m_sockets']:.1f} / {idle['projected_cores_for_1m_sockets']:.2f}", ""))
    rows.append(("  handshakes while opening", "per second", f"{idle['handshakes_per_second']:,.0f}", ""))
    add_usage(idle)

for name in ("reconnect", "reconnect-burst"):
    rc = load(name)
    if not rc:
        continue
    rows.append((f"Reconnect storm: {rc['sockets']:,} clients within {rc['storm_seconds']:g} s, since=", "handshakes/s",
                 spread(runs(rc, "handshakes_per_second")), ">= 5,000"))
    rows.append(("  per server core-second", "handshakes", spread(runs(rc, "handshakes_per_server_core_second")), ""))
    rows.append(("  last replay complete after", "s", spread(runs(rc, "seconds_to_last_synced"), "{:.1f}"), ""))
    bad = [r["check"] for r in rc["runs"] if not r["check"]["ok"]]
    verdict = "ok" if not bad else "FAILED: " + "; ".join(
        f"{ck.get('failed_connects', 0):,} connects failed, {ck['not_synced']:,} not replayed, "
        f"{ck['clients_with_wrong_replay']:,} wrong, {ck['duplicates']:,} twice" for ck in bad)
    rows.append(("  every replay checked (missed messages, once each)", "", verdict, "ok"))
    add_usage(rc)

width = [max(len(r[i]) for r in rows + [("Scenario", "Unit", "Measured: median (min-max)", "Target")]) for i in range(4)]
header = ("Scenario", "Unit", "Measured: median (min-max)", "Target")
print("  ".join(h.ljust(w) for h, w in zip(header, width)))
print("  ".join("-" * w for w in width))
for r in rows:
    print("  ".join(c.ljust(w) for c, w in zip(r, width)))

# Latency: the share of messages at or under each latency, one line per scenario.
series = []
for name in ("fanout-max", "fanout-paced-100k", "fanout-paced", "ingest-sqlite", "ingest-sqlite-paced-3k",
             "ingest-sqlite-paced-5k", "ingest-postgres", "ingest-postgres-paced-3k", "history"):
    doc = load(name)
    if doc and doc.get("latency_buckets_ns"):
        total = sum(c for _, c in doc["latency_buckets_ns"])
        acc, points = 0, []
        for edge, count in doc["latency_buckets_ns"]:
            acc += count
            points.append((max(edge, 1) / 1e6, acc / total))
        series.append((name, points))
if series:
    W, H, L, B = 720, 420, 60, 40
    xs = [p[0] for _, pts in series for p in pts]
    lo, hi = math.log10(max(min(xs), 1e-3)), math.log10(max(xs))
    hi = max(hi, lo + 1)
    def X(ms):
        return L + (math.log10(max(ms, 1e-3)) - lo) / (hi - lo) * (W - L - 20)
    def Y(f):
        return H - B - f * (H - B - 20)
    colours = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W/2}" y="14" text-anchor="middle">Latency distribution (share of messages at or under; log scale)</text>',
           f'<line x1="{L}" y1="{H-B}" x2="{W-20}" y2="{H-B}" stroke="black"/>',
           f'<line x1="{L}" y1="20" x2="{L}" y2="{H-B}" stroke="black"/>']
    for d in range(math.floor(lo), math.ceil(hi) + 1):
        x = X(10 ** d)
        if L <= x <= W - 20:
            out.append(f'<line x1="{x:.1f}" y1="{H-B}" x2="{x:.1f}" y2="20" stroke="#ddd"/>')
            out.append(f'<text x="{x:.1f}" y="{H-B+16}" text-anchor="middle">{10**d:g} ms</text>')
    for f in (0, 0.5, 0.9, 0.99, 1):
        out.append(f'<text x="{L-6}" y="{Y(f)+4:.1f}" text-anchor="end">{f:g}</text>')
        out.append(f'<line x1="{L}" y1="{Y(f):.1f}" x2="{W-20}" y2="{Y(f):.1f}" stroke="#eee"/>')
    for i, (name, pts) in enumerate(series):
        path = " ".join(f"{'M' if j == 0 else 'L'}{X(x):.1f},{Y(y):.1f}" for j, (x, y) in enumerate(pts))
        c = colours[i % len(colours)]
        out.append(f'<path d="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        out.append(f'<text x="{L+10}" y="{40+16*i}" fill="{c}">{name}</text>')
    out.append("</svg>")
    with open(os.path.join(results, "latency.svg"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"\nchart: {os.path.join(results, 'latency.svg')}")
