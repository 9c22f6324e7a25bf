"""benches/compare's judge and reporter.

  compare_report.py clean < ONE_RESULT_LINE      exit 0 when that run was clean
  compare_report.py report RESULTS OUT ELAPSED REPS DUR CMDLINE CRITERION_DIR

Each result line is {"server", "point", "rep", "idle_kb", "r": loadgen's JSON}.
The same criteria decide when a ladder stops climbing and what the report
calls clean.
"""

import json
import os
import platform
import statistics
import subprocess
import sys

# Bounds of the concurrent-calls point: loss below 0.1%, added latency p99
# below 5 ms.
CONC_LOSS_PCT = 0.1
CONC_P99_MS = 5.0


def val(r, path):
    v = r["r"]
    for k in path.split("."):
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v


def loss_pct(r):
    return max(val(r, "rtp.caller_to_callee.loss_pct") or 0, val(r, "rtp.callee_to_caller.loss_pct") or 0) \
        if val(r, "rtp") else 100.0


def clean(r):
    """Was this run clean for its kind of point?"""
    if not r.get("r"):
        return False
    kind, _, n = r["point"].partition(":")
    n = int(n or 0)
    ok = bool(r["r"].get("ok"))
    if kind == "register":
        g = val(r, "registrations") or {}
        return ok and g.get("retransmissions", 1) == 0 and g.get("achieved_rate", 0) >= 0.95 * n
    if kind in ("calls", "setup"):
        c = val(r, "calls") or {}
        return ok and loss_pct(r) < 1.0 and (c.get("achieved_cps") or 0) >= 0.95 * n
    if kind in ("conc", "relay"):
        up = val(r, "calls.max_concurrent") if val(r, "calls") else n
        return ok and (up or 0) >= n and loss_pct(r) < CONC_LOSS_PCT \
            and (val(r, "rtp.latency.p99_ms") or 1e9) < CONC_P99_MS
    return ok


def cmd_clean():
    line = sys.stdin.read().strip()
    try:
        r = json.loads(line)
    except ValueError:
        sys.exit(1)
    sys.exit(0 if clean(r) else 1)


def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def med(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, None
    return statistics.median(xs), min(xs), max(xs)


def fmt(m, unit="", nd=1):
    v, lo, hi = m
    if v is None:
        return "–"
    s = f"{v:,.{nd}f}{unit}"
    if lo != hi:
        s += f" ({lo:,.{nd}f}–{hi:,.{nd}f})"
    return s


def ratio(a, b):
    if a[0] is None or b[0] is None or b[0] == 0:
        return "–"
    return f"{a[0] / b[0]:.2f}×"


def criterion_ns(root, group, bench):
    """Criterion's median estimate in ns, or None when the bench did not run."""
    path = os.path.join(root, group, bench, "new", "estimates.json")
    try:
        with open(path) as f:
            e = json.load(f)
        return e["median"]["point_estimate"], e["median"]["confidence_interval"]
    except (OSError, ValueError, KeyError):
        return None


def cmd_report(res_path, out_path, elapsed, reps, dur, cmdline, crit_dir):
    rows = [json.loads(l) for l in open(res_path) if l.strip()]
    dur = int(dur)

    def runs(server, point):
        return [r for r in rows if r["server"] == server and r["point"] == point and r["r"]]

    points = sorted({r["point"] for r in rows})

    def steps(kind):
        return sorted({int(p.split(":")[1]) for p in points if p.startswith(kind + ":")})

    def highest_clean(srv, kind):
        """Highest step clean in every repetition (a ladder stops at its first
        failure, so a step not run in some repetition does not count)."""
        best = 0
        for n in steps(kind):
            rs = runs(srv, f"{kind}:{n}")
            if len(rs) == int(reps) and all(clean(r) for r in rs):
                best = n
            else:
                break
        return best

    def first_unclean(srv, kind):
        for n in steps(kind):
            rs = runs(srv, f"{kind}:{n}")
            if not rs or not all(clean(r) for r in rs):
                return n, rs
        return None, []

    def why(rs):
        """Why a point was not clean, from its worst repetition."""
        out = []
        for r in rs:
            if clean(r):
                continue
            if val(r, "generator.limited"):
                out.append("load generator limited: " + ", ".join(val(r, "generator.reasons") or []))
            g = val(r, "registrations") or {}
            c = val(r, "calls") or {}
            fails = (g.get("failed") or {}) | (c.get("failed") or {})
            if fails:
                out.append("failures " + json.dumps(fails))
            if g.get("retransmissions"):
                out.append(f"{g['retransmissions']} retransmissions")
            if val(r, "rtp"):
                lp = loss_pct(r)
                if lp >= CONC_LOSS_PCT:
                    out.append(f"loss {lp:.2f}%")
                p99 = val(r, "rtp.latency.p99_ms")
                if p99 is not None and p99 >= CONC_P99_MS:
                    out.append(f"latency p99 {p99:.1f} ms")
            rate = g.get("achieved_rate") or c.get("achieved_cps")
            if rate and r["point"].startswith(("register:", "calls:", "setup:")):
                out.append(f"achieved {rate:,.0f}/s")
            up = c.get("max_concurrent")
            n = int(r["point"].partition(":")[2] or 0)
            if up is not None and r["point"].startswith("conc:") and up < n:
                out.append(f"only {up:,} calls up")
            break
        return "; ".join(out) or "no result"

    L = []
    S = []  # the targets summary, filled as the sections compute their figures

    def target(name, goal, ours, peer, met):
        state = "not measured" if ours.startswith("–") else ("**met**" if met else "not met")
        S.append(f"| {name} | {goal} | {ours} | {peer} | {state} |")

    # ---------------------------------------------------------------- REGISTER
    R = ["## REGISTER (each registration: REGISTER, 401, REGISTER with credentials, 200)\n",
         "| rate offered /s | softswitch achieved /s | p99 ms | server CPU % | Kamailio achieved /s | p99 ms | server CPU % | clean (ss / kam) |",
         "|---|---|---|---|---|---|---|---|"]
    for rate in steps("register"):
        cells, cl = [], []
        for srv in ("softswitch", "kamailio"):
            rs = runs(srv, f"register:{rate}")
            cells += [fmt(med([val(r, "registrations.achieved_rate") for r in rs]), nd=0),
                      fmt(med([val(r, "registrations.latency.p99_ms") for r in rs]), nd=2),
                      fmt(med([val(r, "server_cost.cpu_pct_window") for r in rs]), nd=0)]
            cl.append(("yes" if all(clean(r) for r in rs) else "no") if rs else "not run")
        R.append(f"| {rate} | " + " | ".join(cells) + f" | {' / '.join(cl)} |")
    best = {s: highest_clean(s, "register") for s in ("softswitch", "kamailio")}
    cpu_reg = {}
    for srv in ("softswitch", "kamailio"):
        xs = []
        for rate in steps("register"):
            xs += [val(r, "server_cost.cpu_us_per_registration") for r in runs(srv, f"register:{rate}") if clean(r)]
        # µs per registration is numerically ms per 1,000 registrations.
        cpu_reg[srv] = med(xs)
    R.append("")
    top = max(steps("register") or [0])
    R.append(f"- Highest clean rate (no failure, no retransmission, ≥95% of the offered rate, every repetition): softswitch **{best['softswitch']:,}/s**, Kamailio **{best['kamailio']:,}/s** (the ladder's top is {top:,}/s; a server stops climbing at its first point that is not clean).")
    for srv, name in (("softswitch", "softswitch"), ("kamailio", "Kamailio")):
        n, rs = first_unclean(srv, "register")
        if n:
            R.append(f"- {name} at {n:,}/s: {why(rs)}.")
    R.append(f"- CPU per 1,000 registrations (all clean points): softswitch {fmt(cpu_reg['softswitch'], ' ms CPU', 0)}, Kamailio {fmt(cpu_reg['kamailio'], ' ms CPU', 0)}; ratio softswitch/Kamailio {ratio(cpu_reg['softswitch'], cpu_reg['kamailio'])}.\n")
    at_top = best["kamailio"] == top and best["softswitch"] == top
    target("REGISTER clean rate", "≥ 1.5× Kamailio", f"{best['softswitch']:,}/s", f"{best['kamailio']:,}/s",
           best["kamailio"] > 0 and best["softswitch"] >= 1.5 * best["kamailio"])
    if at_top:
        S[-1] = S[-1].replace("not met", "not shown (both clean at the ladder's top)")
    rr = cpu_reg["softswitch"][0] / cpu_reg["kamailio"][0] if cpu_reg["softswitch"][0] and cpu_reg["kamailio"][0] else None
    target("REGISTER CPU per registration", "≤ 0.5× Kamailio", fmt(cpu_reg["softswitch"], " µs", 0),
           fmt(cpu_reg["kamailio"], " µs", 0) + f" (ratio {ratio(cpu_reg['softswitch'], cpu_reg['kamailio'])})",
           rr is not None and rr <= 0.5)

    # ------------------------------------------------------------------- CALLS
    C = ["## Calls with media (G.711, 20 ms, both ways through the relay; 2 s hold)\n",
         "| CPS offered | softswitch completed | setup p50 / p99 ms | loss % | CPU % | Kamailio+rtpengine completed | setup p50 / p99 ms | loss % | CPU % | clean (ss / kam) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for cps in steps("calls"):
        cells, cl = [], []
        for srv in ("softswitch", "kamailio-rtp"):
            rs = runs(srv, f"calls:{cps}")
            cells += [fmt(med([val(r, "calls.completed") for r in rs]), nd=0),
                      f"{fmt(med([val(r, 'calls.setup.p50_ms') for r in rs]), nd=2)} / {fmt(med([val(r, 'calls.setup.p99_ms') for r in rs]), nd=2)}",
                      fmt(med([loss_pct(r) for r in rs]), nd=3),
                      fmt(med([val(r, "server_cost.cpu_pct_window") for r in rs]), nd=0)]
            cl.append(("yes" if all(clean(r) for r in rs) else "no") if rs else "not run")
        C.append(f"| {cps} | " + " | ".join(cells) + f" | {' / '.join(cl)} |")
    C.append("")
    bestc = {s: highest_clean(s, "calls") for s in ("softswitch", "kamailio-rtp")}
    C.append(f"- Highest clean CPS (every call completed, loss < 1%): softswitch **{bestc['softswitch']}**, Kamailio+rtpengine **{bestc['kamailio-rtp']}** (ladder top {max(steps('calls') or [0])}).")
    ref = 50 if 50 in steps("calls") else (steps("calls") or [0])[0]
    per_call = {s: med([val(r, "server_cost.cpu_us_per_call") for r in runs(s, f"calls:{ref}")]) for s in ("softswitch", "kamailio-rtp")}
    per_call = {s: tuple(x / 1000 if x else None for x in v) for s, v in per_call.items()}
    setup = {s: med([val(r, "calls.setup.p50_ms") for r in runs(s, f"calls:{ref}")]) for s in ("softswitch", "kamailio-rtp")}
    C.append(f"- CPU per call at {ref} CPS ({ref*2} concurrent calls; signalling plus 2 s of media both ways): softswitch {fmt(per_call['softswitch'], ' ms', 2)}, Kamailio+rtpengine {fmt(per_call['kamailio-rtp'], ' ms', 2)}; ratio {ratio(per_call['softswitch'], per_call['kamailio-rtp'])}.")
    C.append(f"- Setup time p50 at {ref*2} concurrent calls (INVITE to 200 at the caller, including the 407 round trip): softswitch {fmt(setup['softswitch'], ' ms', 2)}, Kamailio+rtpengine {fmt(setup['kamailio-rtp'], ' ms', 2)}; ratio {ratio(setup['softswitch'], setup['kamailio-rtp'])}.")
    call_points = [p for p in points if p.startswith(("calls:", "setup:"))]
    clip = {s: sum(val(r, "rtp.calls_first_packet_lost") or 0 for p in call_points for r in runs(s, p) if clean(r)) for s in ("softswitch", "kamailio-rtp")}
    chk = {s: sum(val(r, "rtp.calls_checked") or 0 for p in call_points for r in runs(s, p) if clean(r)) for s in ("softswitch", "kamailio-rtp")}
    C.append(f"- Calls whose callee's first RTP packet did not reach the caller (clipping at answer; every call of the clean points of this section and the next, since past its capacity a relay loses packets anyway): softswitch {clip['softswitch']:,} of {chk['softswitch']:,}, Kamailio+rtpengine {clip['kamailio-rtp']:,} of {chk['kamailio-rtp']:,}.\n")
    target("Setup time p50 at 100 concurrent calls", "≤ 3 ms", fmt(setup["softswitch"], " ms", 2),
           fmt(setup["kamailio-rtp"], " ms", 2), setup["softswitch"][0] is not None and setup["softswitch"][0] <= 3.0)
    target("Callee's first RTP packet relayed (no clipping)", "every call", f"{chk['softswitch'] - clip['softswitch']:,} of {chk['softswitch']:,}",
           f"{chk['kamailio-rtp'] - clip['kamailio-rtp']:,} of {chk['kamailio-rtp']:,}", chk["softswitch"] > 0 and clip["softswitch"] == 0)

    # ------------------------------------------------------------------- SETUP
    U = ["## Call set-up capacity (media anchored, 1 s hold)\n",
         "Each call as above (INVITE, 407, INVITE with credentials, the callee rings and answers, ACK, BYE) with media anchored: relay ports allocated and SDP rewritten on both legs, each stream sending 1 packet per second so the relay path and clipping are still checked. This isolates the cost of setting calls up and tearing them down.\n",
         "| CPS offered | softswitch completed | achieved CPS | setup p50 / p99 ms | CPU % | Kamailio+rtpengine completed | achieved CPS | setup p50 / p99 ms | CPU % | clean (ss / kam) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for cps in steps("setup"):
        cells, cl = [], []
        for srv in ("softswitch", "kamailio-rtp"):
            rs = runs(srv, f"setup:{cps}")
            cells += [fmt(med([val(r, "calls.completed") for r in rs]), nd=0),
                      fmt(med([val(r, "calls.achieved_cps") for r in rs]), nd=0),
                      f"{fmt(med([val(r, 'calls.setup.p50_ms') for r in rs]), nd=2)} / {fmt(med([val(r, 'calls.setup.p99_ms') for r in rs]), nd=2)}",
                      fmt(med([val(r, "server_cost.cpu_pct_window") for r in rs]), nd=0)]
            cl.append(("yes" if all(clean(r) for r in rs) else "no") if rs else "not run")
        U.append(f"| {cps} | " + " | ".join(cells) + f" | {' / '.join(cl)} |")
    U.append("")
    bests = {s: highest_clean(s, "setup") for s in ("softswitch", "kamailio-rtp")}
    U.append(f"- Highest clean CPS (every call completed, ≥ 95% of the offered rate, every repetition): softswitch **{bests['softswitch']:,}**, Kamailio+rtpengine **{bests['kamailio-rtp']:,}** (ladder top {max(steps('setup') or [0]):,}).")
    for srv, name in (("softswitch", "softswitch"), ("kamailio-rtp", "Kamailio+rtpengine")):
        n, rs = first_unclean(srv, "setup")
        if n:
            U.append(f"- {name} at {n:,} CPS: {why(rs)}.")
    xs = [val(r, "server_cost.cpu_us_per_call") for s in ("softswitch",) for p in points if p.startswith("setup:") for r in runs(s, p) if clean(r)]
    ys = [val(r, "server_cost.cpu_us_per_call") for s in ("kamailio-rtp",) for p in points if p.startswith("setup:") for r in runs(s, p) if clean(r)]
    cs, ck = med([x / 1000 for x in xs if x]), med([y / 1000 for y in ys if y])
    U.append(f"- CPU per call set up and torn down (all clean points): softswitch {fmt(cs, ' ms', 2)}, Kamailio+rtpengine {fmt(ck, ' ms', 2)}; ratio {ratio(cs, ck)}.\n")
    target("Calls per second, 0 failures", "≥ 1,000", f"{bests['softswitch']:,}" if steps("setup") else "–",
           f"{bests['kamailio-rtp']:,}", bests["softswitch"] >= 1000)

    # ------------------------------------------------------------------- RELAY
    Y = ["## RTP relay at 200 calls (20,000 packets/s relayed, no signalling in the window)\n",
         "| relay | CPU µs per relayed packet | CPU % | loss % | added latency p50 / p99 ms |",
         "|---|---|---|---|---|"]
    relay = {}
    for srv, name in (("softswitch", "softswitch"), ("kamailio-rtp", "rtpengine (userspace)"), ("forwarder", "forwarder (recvmmsg/sendmmsg floor)")):
        rs = runs(srv, "relay:200")
        relay[srv] = med([val(r, "server_cost.cpu_us_per_packet") for r in rs])
        Y.append(f"| {name} | {fmt(relay[srv], '', 2)} | {fmt(med([val(r, 'server_cost.cpu_pct_window') for r in rs]), nd=0)} | {fmt(med([loss_pct(r) for r in rs]), nd=3)} | "
                 f"{fmt(med([val(r, 'rtp.latency.p50_ms') for r in rs]), nd=2)} / {fmt(med([val(r, 'rtp.latency.p99_ms') for r in rs]), nd=2)} |")
    Y.append("")
    Y.append(f"- Ratios: softswitch/rtpengine {ratio(relay['softswitch'], relay['kamailio-rtp'])}, softswitch/forwarder {ratio(relay['softswitch'], relay['forwarder'])}, rtpengine/forwarder {ratio(relay['kamailio-rtp'], relay['forwarder'])}.")
    Y.append("- Before counting, each leg sends one probe datagram so that the forwarder, which latches on the first packet, knows both ends.\n")
    target("RTP relay CPU per packet at 200 calls", "≤ 5 µs", fmt(relay["softswitch"], " µs", 2),
           fmt(relay["kamailio-rtp"], " µs", 2) + f" (ratio {ratio(relay['softswitch'], relay['kamailio-rtp'])})",
           relay["softswitch"][0] is not None and relay["softswitch"][0] <= 5.0)

    # Concurrent calls under bounds.
    K = [f"## Concurrent calls with full media (loss < {CONC_LOSS_PCT}%, added latency p99 < {CONC_P99_MS:.0f} ms)\n",
         "Calls set up at 200/s, then held with G.711 both ways (50 packets/s per direction) for a steady window without signalling. Each server climbs the ladder until its first point outside the bounds. The load generator sends and receives every packet on the same two cores, so it takes a share of the machine that grows with the load.\n",
         "| calls | softswitch loss % | p99 ms | CPU µs/pkt | CPU % | rtpengine loss % | p99 ms | CPU µs/pkt | CPU % | forwarder loss % | p99 ms | CPU % | load generator CPU % (ss) |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in steps("conc"):
        cells = []
        for srv in ("softswitch", "kamailio-rtp", "forwarder"):
            rs = runs(srv, f"conc:{n}")
            cells += [fmt(med([loss_pct(r) for r in rs]), nd=3), fmt(med([val(r, "rtp.latency.p99_ms") for r in rs]), nd=2)]
            if srv != "forwarder":
                cells.append(fmt(med([val(r, "server_cost.cpu_us_per_packet") for r in rs]), nd=2))
            cells.append(fmt(med([val(r, "server_cost.cpu_pct_window") for r in rs]), nd=0))
        cells.append(fmt(med([val(r, "generator.cpu_pct") for r in runs("softswitch", f"conc:{n}")]), nd=0))
        K.append(f"| {n:,} | " + " | ".join(cells) + " |")
    K.append("")
    bestk = {s: highest_clean(s, "conc") for s in ("softswitch", "kamailio-rtp", "forwarder")}
    K.append(f"- Most concurrent calls within the bounds in every repetition: softswitch **{bestk['softswitch']:,}**, rtpengine **{bestk['kamailio-rtp']:,}**, forwarder **{bestk['forwarder']:,}** (ladder top {max(steps('conc') or [0]):,}).")
    for srv, name in (("softswitch", "softswitch"), ("kamailio-rtp", "rtpengine"), ("forwarder", "forwarder")):
        n, rs = first_unclean(srv, "conc")
        if n:
            K.append(f"- {name} at {n:,} calls: {why(rs)}.")
    kr = bestk["softswitch"] / bestk["kamailio-rtp"] if bestk["kamailio-rtp"] else None
    K.append(f"- Ratio softswitch/rtpengine: {f'{kr:.2f}×' if kr else '–'}.\n")
    target("Concurrent calls within loss/latency bounds", "≥ 2× rtpengine", f"{bestk['softswitch']:,}" if steps("conc") else "–",
           f"{bestk['kamailio-rtp']:,}" + (f" (ratio {kr:.2f}×)" if kr else ""), kr is not None and kr >= 2.0)

    # Flat cost as calls grow: CPU per packet at the highest concurrency of
    # 1,000 calls or more that every repetition ran without loss (the latency
    # bound is the capacity point's business) vs 200 calls.
    flat = None
    n2 = max([n for n in steps("conc") if n >= 1000 and len(runs("softswitch", f"conc:{n}")) == int(reps)
              and all(loss_pct(r) < CONC_LOSS_PCT for r in runs("softswitch", f"conc:{n}"))] or [0])
    if n2 and relay["softswitch"][0]:
        hi = med([val(r, "server_cost.cpu_us_per_packet") for r in runs("softswitch", f"conc:{n2}")])
        if hi[0]:
            flat = hi[0] / relay["softswitch"][0]
            K.append(f"- Flat cost: CPU per packet at {n2:,} calls {fmt(hi, ' µs', 2)} vs {fmt(relay['softswitch'], ' µs', 2)} at 200 calls: {flat:.2f}×.\n")
    target("Relay cost flat as calls grow", "≤ 1.2× from 200 to ≥ 1,000 calls", f"{flat:.2f}× at {n2:,} calls" if flat else "–", "–",
           flat is not None and flat <= 1.2)

    # ------------------------------------------------------------------ MEMORY
    M = ["## Memory\n",
         "| server | idle (fresh start) | per active call at 200 calls | per active call at 2,000 calls | peak at 2,000 calls |",
         "|---|---|---|---|---|"]
    mem = {}
    for srv, name in (("softswitch", "softswitch (RSS)"), ("kamailio-rtp", "Kamailio + rtpengine (PSS sum)")):
        idle = med([r["idle_kb"] / 1024 for p in points for r in runs(srv, p)])
        m200 = med([val(r, "server_cost.rss_per_active_call_kb") for r in runs(srv, "memory:200")])
        m2k = med([val(r, "server_cost.rss_per_active_call_kb") for r in runs(srv, "memory:2000")])
        peak = med([(val(r, "server_cost.peak_pss_kb") or 0) / 1024 for r in runs(srv, "memory:2000")])
        mem[srv] = (idle, m200, m2k)
        M.append(f"| {name} | {fmt(idle, ' MiB', 1)} | {fmt(m200, ' KiB', 1)} | {fmt(m2k, ' KiB', 1)} | {fmt(peak, ' MiB', 1)} |")
    M.append("")
    M.append(f"- Ratios softswitch/peer: idle {ratio(mem['softswitch'][0], mem['kamailio-rtp'][0])}, per call at 200 {ratio(mem['softswitch'][1], mem['kamailio-rtp'][1])}, at 2,000 {ratio(mem['softswitch'][2], mem['kamailio-rtp'][2])}.")
    M.append("- Per active call = (memory at the highest concurrency sampled − memory when the load started, callees registered) ÷ calls up; media at 1 packet/s per stream so 2,000 calls fit on this machine.\n")
    ss = mem["softswitch"]
    per = [m[0] for m in ss[1:] if m[0] is not None]
    target("Memory per active relayed call", "≤ 16 KiB", f"{fmt(ss[1], ' KiB', 1)} at 200, {fmt(ss[2], ' KiB', 1)} at 2,000",
           f"{fmt(mem['kamailio-rtp'][1], ' KiB', 1)} at 200, {fmt(mem['kamailio-rtp'][2], ' KiB', 1)} at 2,000", bool(per) and max(per) <= 16)
    target("Idle daemon (4,000 extensions)", "≤ 20 MiB", fmt(ss[0], " MiB", 1), fmt(mem["kamailio-rtp"][0], " MiB", 1),
           ss[0][0] is not None and ss[0][0] <= 20)

    # ------------------------------------------------------------------- PARSE
    P = ["## SIP parse and serialize (criterion, same run)\n",
         "`cargo bench -p softswitch-benches --bench sip_parse` — ours: `parse_message` plus typed top Via, CSeq, From, To and Call-ID; rsip 0.4: parse plus typed Via and CSeq. Median of criterion's estimate (95% interval in parentheses).\n",
         "| message | ours parse+typed | rsip parse+typed | ratio | ours serialize | rsip serialize | ratio |",
         "|---|---|---|---|---|---|---|"]
    pt = {}
    for msg in ("register_auth", "invite_sdp", "200_sdp", "180"):
        o, r = criterion_ns(crit_dir, "ours", f"parse_typed_{msg}"), criterion_ns(crit_dir, "rsip", f"parse_typed_{msg}")
        os_, rs_ = criterion_ns(crit_dir, "ours", f"serialize_{msg}"), criterion_ns(crit_dir, "rsip", f"serialize_{msg}")
        pt[msg] = (o, os_, r, rs_)

        def c(e):
            if not e:
                return "–"
            v, ci = e
            return f"{v / 1000:.3f} µs ({ci['lower_bound'] / 1000:.3f}–{ci['upper_bound'] / 1000:.3f})"

        def q(a, b):
            return f"{a[0] / b[0]:.2f}×" if a and b else "–"
        P.append(f"| {msg} | {c(o)} | {c(r)} | {q(o, r)} | {c(os_)} | {c(rs_)} | {q(os_, rs_)} |")
    P.append("")
    o, os_, r, rs_ = pt["invite_sdp"]
    target("Parse INVITE with SDP, headers typed", "≤ 1 µs", f"{o[0] / 1000:.3f} µs" if o else "–",
           f"rsip {r[0] / 1000:.3f} µs" if r else "–", bool(o) and o[0] <= 1000)
    target("Serialize INVITE with SDP", "≤ 0.5 µs", f"{os_[0] / 1000:.3f} µs" if os_ else "–",
           f"rsip {rs_[0] / 1000:.3f} µs" if rs_ else "–", bool(os_) and os_[0] <= 500)

    # --------------------------------------------------------------- GENERATOR
    G = ["## Was the load generator the limit?\n"]
    lim = [f"{r['server']} {r['point']} rep {r['rep']}: {', '.join(val(r, 'generator.reasons') or [])}" for r in rows if val(r, "generator.limited")]
    gmax = max([val(r, "generator.cpu_pct") or 0 for r in rows] or [0])
    G.append(f"Highest load-generator CPU in any run: {gmax:.0f}% (its SIP and RTP threads are reported separately; a thread above 90% of a core or RTP send lag p90 above 5 ms flags the run).\n")
    G.append("Flagged runs: " + ("; ".join(lim) if lim else "none") + "\n")
    fails = [f"{r['server']} {r['point']} rep {r['rep']}: {json.dumps((val(r, 'registrations.failed') or {}) | (val(r, 'calls.failed') or {}))}"
             for r in rows if not r["r"].get("ok")]
    G.append("## Failures seen\n")
    G.append("\n".join(f"- {f}" for f in fails) if fails else "None.")
    G.append("")

    # ------------------------------------------------------------------ header
    L.append("# Benchmarks: softswitch vs Kamailio 5.6 (+ rtpengine) vs a bare forwarder\n")
    L.append(f"Generated by `{cmdline}` ({reps} repetition(s) per point, {dur} s of steady load per point, {int(elapsed)//60} min {int(elapsed)%60} s in all). "
             "Figures are medians with the min–max spread over the repetitions in parentheses. "
             "Everything ran on loopback on one machine, load generator included: absolute numbers are this machine's, ratios are what carries over.\n")
    partial = os.environ.get("COMPARE_PARTIAL")
    if partial:
        try:
            pj = json.loads(partial)
            L.append(f"Sections re-run on {pj['at']} with `COMPARE_SECTIONS=\"{pj['rerun']}\"` (all servers, {reps} repetitions); "
                     "the other sections are the earlier full run's figures, kept from its results file.\n")
        except (ValueError, KeyError):
            pass
    if os.environ.get("COMPARE_NOTE"):
        L.append(os.environ["COMPARE_NOTE"].strip() + "\n")
    L.append("## Targets\n")
    L.append("| target | goal | softswitch | peer (same run) | |")
    L.append("|---|---|---|---|---|")
    L += S
    L.append("")
    L.append("## Machine\n")
    cpu_model = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem_gib = sh("free -g | awk '/Mem:/ {print $2}'")
    L.append(f"- CPU: {cpu_model} ({sh('nproc')} cores available)")
    L.append(f"- Memory: {mem_gib} GiB; kernel {platform.release()}; open files limit {sh('ulimit -n')}")
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    L.append(f"- Load average when the report was written (other work shares the machine): {loadavg}")
    L.append(f"- Peers: {sh('kamailio -v | head -1')}; rtpengine {sh('rtpengine --version 2>&1 | head -1')}\n")
    L.append("## How it was run\n")
    L.append("Each point starts a fresh server and stops it afterwards. Servers: softswitch (release build, `RUST_LOG=warn`, config with 4,000 extensions), "
             "Kamailio with `benches/peers/kamailio.cfg` (2 UDP children, in-memory usrloc, `pv_www_authenticate`/`pv_proxy_authenticate` against one fixed password, `-m 256 -M 8`), "
             "for calls with `-A WITH_RTPENGINE` and rtpengine with `benches/peers/rtpengine.conf` (userspace only, `table = -1`, 2 threads, ng over UDP). "
             "Both challenge every REGISTER and INVITE (MD5, qop=auth). The load generator sends from 50 loopback addresses (127.0.0.1–127.0.0.50).\n")
    L.append("```")
    L.append(f"loadgen register --server S --users 2000 --first-user 10000 --rate R --duration {dur} --password P --local-ips 127.0.0.1-127.0.0.50 --timeout 4 --pid PID|--pid-name kamailio --json")
    L.append(f"loadgen calls --server S --callers 10000-10999 --callees 20000-20999 --cps C --max-concurrent 1000 --hold 2 --duration {dur} --password P --local-ips ... --register-rate 1000 --json")
    L.append(f"loadgen calls --server S --callers 10000-11999 --callees 20000-21999 --cps C --max-concurrent 2000 --hold 1 --duration {dur} --rtp-interval 1000 ...   # set-up capacity")
    L.append(f"loadgen calls ... --callers 10000-1N --callees 20000-2N --cps 200 --max-concurrent N --hold {dur}+R+4 --duration {dur}+R --warmup R   # relay and concurrency, R = N/200 + 3 s; CPU of rtpengine only for the peer")
    L.append(f"forwarder --base 50000 --pairs N & loadgen rtp --targets 127.0.0.1:50000 --calls N --duration {dur}+R --warmup R --pid FWD")
    L.append("loadgen calls ... --cps 200 --max-concurrent N --rtp-interval 1000   # memory at N = 200 and 2000 calls")
    L.append("cargo bench -p softswitch-benches --bench sip_parse -- --warm-up-time 1 --measurement-time 5")
    L.append("```\n")
    L.append("CPU is user+system time from `/proc/<pid>/stat` over the steady window (after the warm-up, while load is offered), summed over every process of the server (Kamailio's workers, rtpengine). "
             "Memory is VmRSS for one process, the sum of PSS for a family of processes (Kamailio's shared memory is counted once).\n")
    L += R + C + U + Y + K + M + P + G
    findings = os.path.join(os.path.dirname(out_path), "benches", "PROFILE.md")
    if os.path.exists(findings):
        L.append(open(findings).read().rstrip() + "\n")
    open(out_path, "w").write("\n".join(L) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "clean":
        cmd_clean()
    elif len(sys.argv) == 9 and sys.argv[1] == "report":
        cmd_report(*sys.argv[2:9])
    else:
        sys.exit(__doc__)
