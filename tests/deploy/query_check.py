#!/usr/bin/env python3
"""Evaluates the shipped dashboards and alert rules through a live Prometheus.

Used by tests/deploy/prometheus_check.sh (standard library only):

  query_check.py wait    PROM_URL JOB=COUNT... [--scrapes N] [--timeout S]
  query_check.py check   PROM_URL ALERTS_YML DATASOURCE_UID DASHBOARD.json...

`wait` polls until every job has COUNT targets up and at least N scrapes of
each are stored. `check`:
  - every rule of ALERTS_YML is loaded by Prometheus, evaluated without error
    (/api/v1/rules), and its expression answers /api/v1/query;
  - every dashboard parses, refers to the provisioned data source, and every
    target of every panel, with Grafana's variables replaced, answers with at
    least one finite value: once with each variable at its default (All is
    the variable's allValue) and once with each query variable at the first
    value its query finds.
Prints one line per failure and a summary; exits 0 when all pass, 1 if not.
"""

import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# What Grafana's built-in variables stand for in the test: the scrape
# interval is 1 s and there are tens of seconds of data.
BUILTINS = {
    "__rate_interval": "15s",
    "__interval": "2s",
    "__interval_ms": "2000",
    "__range": "1m",
    "__range_s": "60",
    "__range_ms": "60000",
}
RANGE_S = 30  # range queries: the last 30 s ...
STEP_S = 2  # ... every 2 s

failures = []


def fail(msg):
    failures.append(msg)
    print(f"prometheus_check: FAIL: {msg}", flush=True)


def api(base, path, params):
    """GETs an API path; returns the decoded JSON (success or error)."""
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400/422 carry an error body
        try:
            return json.load(e)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError) as e:
        return {"status": "error", "error": str(e)}


def finite(v):
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def has_finite_value(data):
    kind, result = data.get("resultType"), data.get("result")
    if kind == "vector":
        return any(finite(s["value"][1]) for s in result)
    if kind == "matrix":
        return any(finite(v[1]) for s in result for v in s["values"])
    if kind == "scalar":
        return finite(result[1])
    return False


def cmd_wait(base, args):
    want = {}
    scrapes, timeout = 10, 60.0
    it = iter(args)
    for a in it:
        if a == "--scrapes":
            scrapes = int(next(it))
        elif a == "--timeout":
            timeout = float(next(it))
        else:
            job, count = a.split("=")
            want[job] = int(count)
    deadline = time.monotonic() + timeout
    status = ""
    while True:
        r = api(base, "/api/v1/targets", {"state": "active"})
        up = {}
        if r.get("status") == "success":
            for t in r["data"]["activeTargets"]:
                job = t["labels"].get("job", "")
                if t.get("health") == "up":
                    up[job] = up.get(job, 0) + 1
            status = ", ".join(f"{j}: {up.get(j, 0)}/{n} up" for j, n in want.items())
            if all(up.get(j, 0) >= n for j, n in want.items()):
                q = api(base, "/api/v1/query", {"query": "min(count_over_time(up[5m]))"})
                res = q.get("data", {}).get("result", [])
                got = int(float(res[0]["value"][1])) if res else 0
                status += f"; {got}/{scrapes} scrapes"
                if got >= scrapes:
                    print(f"prometheus_check: targets ready ({status})", flush=True)
                    return 0
        else:
            status = r.get("error", "no answer")
        if time.monotonic() > deadline:
            print(f"prometheus_check: FAIL: timed out after {timeout:.0f} s waiting for "
                  f"targets ({status})", flush=True)
            for t in r.get("data", {}).get("activeTargets", []):
                print(f"    {t['scrapeUrl']}: {t.get('health')} {t.get('lastError', '')}")
            return 1
        time.sleep(0.5)


# --- alert rules ---------------------------------------------------------------

def alert_names(path):
    """The `- alert: NAME` entries of a rules file (no YAML library needed)."""
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^\s*-\s*alert:\s*(\S+)\s*$", f.read(), re.M)


def check_rules(base, alerts_path):
    names = alert_names(alerts_path)
    r = api(base, "/api/v1/rules", {})
    if r.get("status") != "success":
        fail(f"/api/v1/rules: {r.get('error')}")
        return
    loaded = {}
    for g in r["data"]["groups"]:
        for rule in g["rules"]:
            if rule.get("type") == "alerting":
                loaded[rule["name"]] = rule
    for name in names:
        rule = loaded.get(name)
        if rule is None:
            fail(f"alert {name}: not loaded by Prometheus")
            continue
        if rule.get("health") != "ok" or rule.get("lastError"):
            fail(f"alert {name}: evaluation {rule.get('health')}: {rule.get('lastError')}")
        q = api(base, "/api/v1/query", {"query": rule["query"]})
        if q.get("status") != "success":
            fail(f"alert {name}: query failed: {q.get('error')}\n    {rule['query']}")
    extra = set(loaded) - set(names)
    if extra:
        fail(f"Prometheus loaded alerts not in {alerts_path}: {sorted(extra)}")
    print(f"prometheus_check: {len(names)} alert rules loaded, evaluated and queried", flush=True)


# --- dashboards -------------------------------------------------------------------

def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        for sub in p.get("panels", []) or []:  # collapsed rows
            yield sub


VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return VAR_RE.sub(repl, expr)


def grafana_regex_escape(value):
    """How Grafana writes a multi-value variable's value into a PromQL regex:
    regex metacharacters behind a doubled backslash (one for the PromQL
    string, one for the regex)."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def label_values(base, definition, values):
    """Values Grafana's label_values(...) variable query finds."""
    definition = substitute(definition, values)
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", definition, re.S)
    if m:
        r = api(base, "/api/v1/series", {"match[]": m.group(1)})
        if r.get("status") != "success":
            return None, r.get("error")
        vals = sorted({s[m.group(2)] for s in r["data"] if m.group(2) in s})
        return vals, None
    m = re.fullmatch(r"\s*label_values\(\s*(\w+)\s*\)\s*", definition)
    if m:
        r = api(base, f"/api/v1/label/{m.group(1)}/values", {})
        if r.get("status") != "success":
            return None, r.get("error")
        return sorted(r["data"]), None
    return None, f"unsupported variable query {definition!r}"


def variable_rounds(base, dash, title):
    """[(round name, {variable: value})]: defaults, then first values."""
    defaults, firsts = dict(BUILTINS), dict(BUILTINS)
    for v in dash.get("templating", {}).get("list", []):
        name, kind = v["name"], v.get("type")
        current = v.get("current", {}).get("value")
        if isinstance(current, list):
            current = current[0] if current else ""
        if kind == "custom":
            defaults[name] = firsts[name] = current
        elif kind == "query":
            q = v.get("query")
            definition = q.get("query") if isinstance(q, dict) else q
            vals, err = label_values(base, definition, defaults)
            if err or not vals:
                fail(f"{title}: variable ${name} ({definition}): "
                     f"{err or 'finds no values'}")
                vals = [""]
            multi = v.get("multi") or v.get("includeAll")
            first = grafana_regex_escape(vals[0]) if multi else vals[0]
            if current in (None, "", "$__all"):
                defaults[name] = v.get("allValue") or "|".join(
                    grafana_regex_escape(x) for x in vals)
            else:
                defaults[name] = current
            firsts[name] = first
        else:
            fail(f"{title}: variable ${name}: type {kind} is not checked by this test")
    return [("defaults", defaults), ("first values", firsts)]


def check_dashboard(base, path, ds_uid):
    try:
        with open(path, encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
        return 0
    title = dash.get("title", path)
    if not dash.get("uid"):
        fail(f"{title}: no uid")
    if dash.get("schemaVersion", 0) < 36:
        fail(f"{title}: schemaVersion {dash.get('schemaVersion')} < 36")
    ids = [p.get("id") for p in panels_of(dash)]
    if len(ids) != len(set(ids)):
        fail(f"{title}: duplicate panel ids")
    rounds = variable_rounds(base, dash, title)
    now = time.time()
    checked = 0
    for p in panels_of(dash):
        if p.get("type") == "row":
            continue
        where = f"{title} / {p.get('title')!r}"
        targets = p.get("targets") or []
        if not targets:
            fail(f"{where}: no targets")
        for ds in [p.get("datasource")] + [t.get("datasource") for t in targets]:
            if not isinstance(ds, dict) or ds.get("uid") != ds_uid:
                fail(f"{where}: data source {ds} is not the provisioned uid {ds_uid}")
        for t in targets:
            expr = t.get("expr", "")
            for round_name, values in rounds:
                q = substitute(expr, values)
                if "$" in q or "[[" in q:
                    fail(f"{where} {t.get('refId')}: unresolved variable in {q}")
                    continue
                if t.get("instant"):
                    r = api(base, "/api/v1/query", {"query": q, "time": now})
                else:
                    r = api(base, "/api/v1/query_range", {
                        "query": q, "start": now - RANGE_S, "end": now, "step": STEP_S})
                checked += 1
                if r.get("status") != "success":
                    fail(f"{where} {t.get('refId')} ({round_name}): {r.get('error')}\n    {q}")
                elif not has_finite_value(r["data"]):
                    fail(f"{where} {t.get('refId')} ({round_name}): no data\n    {q}")
    print(f"prometheus_check: {title}: {checked} queries", flush=True)
    return checked


def cmd_check(base, alerts_path, ds_uid, dashboards):
    check_rules(base, alerts_path)
    for path in dashboards:
        check_dashboard(base, path, ds_uid)
    if failures:
        print(f"prometheus_check: {len(failures)} failure(s)", flush=True)
        return 1
    return 0


def main(argv):
    if len(argv) >= 3 and argv[1] == "wait":
        return cmd_wait(argv[2].rstrip("/"), argv[3:])
    if len(argv) >= 6 and argv[1] == "check":
        return cmd_check(argv[2].rstrip("/"), argv[3], argv[4], argv[5:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
