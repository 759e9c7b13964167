#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python standard library only).

    bench.py body QUERY_FILE VARIABLES_JSON OUT_FILE
        Write the POST body {"query": <file text, verbatim>, "variables": <json>}.
    bench.py verify CASE RESPONSE_FILE HTTP_STATUS
        Fail (exit 1) unless the response is HTTP 200, has no "errors" member and has
        the data the case expects (e.g. 24 products for Q1). Prints a one-line summary.
    bench.py compare CASE GATEWAY_RESPONSE POSTGRAPHILE_RESPONSE
        Compare the gateway's and PostGraphile's answers to the same case: product ids
        and their order, handles, titles, prices, featured image and variants (price and
        availability). Prints the result; exit 1 on any difference.
    bench.py stats RESPONSE_FILE
        Print extensions.stats.sqlStatements of a gateway response (QUERY_STATS=true).
    bench.py report OUT_DIR
        Print the Markdown results from OUT_DIR/meta.json and OUT_DIR/runs/*.json.
"""

import json
import sys
from decimal import Decimal
from pathlib import Path


def die(msg):
    print(f"bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


def load(path):
    text = Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        die(f"{path}: not JSON ({e}): {text[:300]!r}")


# --- body --------------------------------------------------------------------------


def cmd_body(query_file, variables_json, out_file):
    query = Path(query_file).read_text()
    variables = json.loads(variables_json)
    Path(out_file).write_text(json.dumps({"query": query, "variables": variables}))


# --- normalising both servers' answers -------------------------------------------------


def gid_num(value):
    """gid://shopify/Product/42 -> 42; "42" -> 42."""
    return int(str(value).rsplit("/", 1)[-1])


def usd_minor(money):
    if money is None:
        return None
    if money["currencyCode"] != "USD":
        die(f"unexpected currency {money['currencyCode']}")
    return int(Decimal(money["amount"]) * 100)


def gw_product(p):
    variants = p["variants"]
    vnodes = variants.get("nodes") if "nodes" in variants else [e["node"] for e in variants["edges"]]
    out = {
        "id": gid_num(p["id"]),
        "handle": p["handle"],
        "title": p["title"],
        "min": usd_minor(p["priceRange"]["minVariantPrice"]),
        "max": usd_minor(p["priceRange"]["maxVariantPrice"]),
        "image": (p["featuredImage"] or {}).get("url"),
        "variants": [(usd_minor(v["price"]), v["availableForSale"]) for v in vnodes],
    }
    if "images" in p:
        out["images"] = [gid_num(e["node"]["id"]) for e in p["images"]["edges"]]
        out["variant_ids"] = [gid_num(v["id"]) for v in vnodes]
        out["options"] = [(o["name"], o["values"]) for o in p["options"]]
        out["selected"] = [[(s["name"], s["value"]) for s in v["selectedOptions"]] for v in vnodes]
        out["available"] = p["availableForSale"]
    return out


def pgl_variant(v):
    prices = v["variantPricesByVariantId"]["nodes"]
    price = int(prices[0]["amountMinor"]) if prices else None
    return price, v["inventoryPolicy"] == "CONTINUE" or int(v["available"]) > 0


def pgl_product(p, full):
    images = p["productImagesByProductId"]["nodes"] if not full else p["featuredImage"]["nodes"]
    vnodes = p["productVariantsByProductId"]["nodes"]
    out = {
        "id": int(p["id"]),
        "handle": p["handle"],
        "title": p["title"],
        "min": int(p["minPriceMinor"]),
        "max": int(p["maxPriceMinor"]),
        "image": images[0]["url"] if images else None,
        "variants": [pgl_variant(v) for v in vnodes],
    }
    if full:
        options = p["productOptionsByProductId"]["nodes"]
        names = [o["name"] for o in options]
        out["images"] = [int(i["id"]) for i in p["productImagesByProductId"]["nodes"]]
        out["variant_ids"] = [int(v["id"]) for v in vnodes]
        out["options"] = [(o["name"], o["values"]) for o in options]
        out["selected"] = [
            [(n, val) for n, val in zip(names, (v["option1"], v["option2"], v["option3"])) if val is not None]
            for v in vnodes
        ]
        out["available"] = any(a for _, a in out["variants"])
    return out


def gateway_products(case, data):
    if case == "q1":
        conn = data["collection"]["products"]
        return [gw_product(e["node"]) for e in conn["edges"]]
    if case == "q2":
        return [gw_product(data["product"])] if data["product"] else []
    if case == "q3":
        return [gw_product(e["node"]) for e in data["products"]["edges"]]
    die(f"unknown case {case}")


def postgraphile_products(case, data):
    if case == "q1":
        nodes = data["collectionByHandle"]["collectionProductsByCollectionId"]["nodes"]
        return [pgl_product(n["productByProductId"], full=False) for n in nodes]
    if case == "q2":
        return [pgl_product(data["productByHandle"], full=True)] if data["productByHandle"] else []
    if case == "q3":
        return [pgl_product(n, full=True) for n in data["allProducts"]["nodes"]]
    die(f"unknown case {case}")


EXPECTED = {"q1": 24, "q2": 1, "q3": 100}


# --- verify ------------------------------------------------------------------------------


def cmd_verify(case, response_file, http_status):
    """case: q1_gateway, q1_postgraphile, q2_gateway, ..."""
    raw = Path(response_file).read_text()
    if http_status != "200":
        die(f"{case}: HTTP {http_status}: {raw[:500]}")
    doc = load(response_file)
    if doc.get("errors"):
        die(f"{case}: GraphQL errors: {json.dumps(doc['errors'])[:1000]}")
    data = doc.get("data")
    if not data:
        die(f"{case}: no data: {raw[:500]}")
    query, server = case.split("_", 1)
    products = gateway_products(query, data) if server == "gateway" else postgraphile_products(query, data)
    if len(products) != EXPECTED[query]:
        die(f"{case}: expected {EXPECTED[query]} product(s), got {len(products)}")
    variants = sum(len(p["variants"]) for p in products)
    print(f"{case}: HTTP 200, no errors, {len(products)} product(s), {variants} variant(s), {len(raw)} bytes")


# --- compare -----------------------------------------------------------------------------


def short(value, limit=160):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_compare(case, gateway_file, postgraphile_file):
    """Exit 0: identical. Exit 2: same products in the same order, but some fields differ.
    Exit 1: the product ids or their order differ."""
    gw = gateway_products(case, load(gateway_file)["data"])
    pg = postgraphile_products(case, load(postgraphile_file)["data"])
    gw_ids = [p["id"] for p in gw]
    pg_ids = [p["id"] for p in pg]
    label = case.upper()
    if gw_ids != pg_ids:
        print(f"{label} check: MISMATCH: the product ids differ:\n  gateway      {gw_ids}\n  postgraphile {pg_ids}")
        sys.exit(1)
    ids = ", ".join(str(i) for i in gw_ids) if len(gw_ids) <= 30 else f"{gw_ids[0]} … {gw_ids[-1]}"
    head = f"both servers return the same {len(gw_ids)} product(s) in the same order (ids {ids})"
    # Field by field: equal, the same items in another order, or different values.
    reordered, differing, examples = {}, {}, []
    for a, b in zip(gw, pg):
        for key in a:
            if a[key] == b.get(key):
                continue
            same_items = isinstance(a[key], list) and sorted(map(repr, a[key])) == sorted(map(repr, b.get(key) or []))
            (reordered if same_items else differing).setdefault(key, []).append(a["id"])
            if len(examples) < 2:
                examples.append(f"product {a['id']} {key}: gateway {short(a[key])} vs postgraphile {short(b.get(key))}")
    fields = "handles, titles, min/max USD price, featured image URL, variants (USD price, availableForSale, in order)"
    if case != "q1":
        fields += ", image ids, variant ids, options, selectedOptions, availableForSale"
    n_var = sum(len(p["variants"]) for p in gw)
    if not reordered and not differing:
        print(f"{label} check: MATCH: {head}, with identical {fields}; {n_var} variants compared.")
        return
    parts = []
    for key, pids in sorted(differing.items()):
        parts.append(f"{key} has different values for {len(pids)} product(s)")
    for key, pids in sorted(reordered.items()):
        parts.append(f"{key} has the same items in another order for {len(pids)} product(s)")
    print(f"{label} check: IDS MATCH, DATA DIFFERS: {head}, but " + "; ".join(parts)
          + f" (compared: {fields}; {n_var} variants). Examples: " + " | ".join(examples))
    sys.exit(2)


# --- stats --------------------------------------------------------------------------------


def cmd_stats(response_file):
    doc = load(response_file)
    if doc.get("errors"):
        die(f"{response_file}: GraphQL errors: {json.dumps(doc['errors'])[:500]}")
    try:
        print(int(doc["extensions"]["stats"]["sqlStatements"]))
    except (KeyError, TypeError):
        die(f"{response_file}: no extensions.stats.sqlStatements (is QUERY_STATS=true?)")


# --- report -------------------------------------------------------------------------------


def ms(us):
    return f"{us / 1000:.2f} ms"


def mb_of(kb):
    return f"{int(kb) / 1024:.1f} MiB" if kb not in (None, "") else "n/a"


def cmd_report(out_dir):
    out = Path(out_dir)
    meta = json.loads((out / "meta.json").read_text())
    runs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    lines = []
    w = lines.append
    w(f"# commerce-gateway benchmark — {meta['date']}")
    w("")
    w(f"- Machine: {meta['nproc']} CPU(s), {meta['cpu']}; {meta['postgres']}")
    w(f"- Gateway: `{meta['gateway_bin']}` (git {meta['git']}, binary built {meta['bin_mtime']}), "
      f"DATABASE_POOL_SIZE={meta['pool']}, QUERY_STATS off during load")
    w(f"- PostGraphile {meta['postgraphile']} (+ postgraphile-plugin-connection-filter {meta['connection_filter']}), "
      f"node {meta['node']}, single process, --max-pool-size {meta['pool']}, --disable-query-log, NODE_ENV=production")
    w(f"- Load: `{meta['wrk_cmd']}`, one case at a time, gateway and PostGraphile alternating; "
      f"each run right after a {meta['warmup']} warm-up of the same case. {meta['wrk_version']}")
    w(f"- Data: {meta['products']} seeded products; Q1 collection `{meta['q1_handle']}`, "
      f"Q2 product `{meta['q2_handle']}`, Q3 variables `{{}}`")
    w("")
    w("| case | server | req/s | p50 | p99 | statements/request | non-2xx | GraphQL errors | socket errors | server VmHWM after the run (cumulative) |")
    w("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = {"q1": "Q1 collection grid (24 products)", "q2": "Q2 getProduct", "q3": "Q3 getProducts {} (100 products)"}
    failed = False
    for case in ("q1", "q2", "q3"):
        for server in ("gateway", "postgraphile"):
            key = f"{case}_{server}"
            r = runs.get(key)
            if r is None:
                continue
            sock = r["socket_connect"] + r["socket_read"] + r["socket_write"] + r["socket_timeout"]
            stm = meta["statements"].get(key, "n/a")
            if r["non2xx"] or r["graphql_errors"] or sock:
                failed = True
            w(f"| {names[case]} | {server} | {r['rps']:.1f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} | {stm} | "
              f"{r['non2xx']} | {r['graphql_errors']} | {sock} | {mb_of(r.get('vmhwm_kb'))} |")
    w("")
    for case in ("q1", "q2", "q3"):
        g, p = runs.get(f"{case}_gateway"), runs.get(f"{case}_postgraphile")
        if g and p:
            ratio = g["rps"] / p["rps"] if p["rps"] else float("inf")
            goal = " (goal ≥ 3×: " + ("met" if ratio >= 3 else "NOT met") + ")" if case == "q1" else ""
            w(f"- {case.upper()} ratio gateway/PostGraphile req/s: **{ratio:.2f}×**{goal}")
    rounds_g = out / "runs" / "q1_gateway.rounds.jsonl"
    rounds_p = out / "runs" / "q1_postgraphile.rounds.jsonl"
    if rounds_g.exists() and rounds_p.exists():
        g_rps = [json.loads(l)["rps"] for l in rounds_g.read_text().splitlines() if l.strip()]
        p_rps = [json.loads(l)["rps"] for l in rounds_p.read_text().splitlines() if l.strip()]
        ratios = sorted(g / p for g, p in zip(g_rps, p_rps) if p)
        if ratios:
            mid = len(ratios) // 2
            median = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
            verdict = "met" if median >= 3 else "NOT met"
            w(f"- Q1 in {len(ratios)} rounds of short alternating windows: ratios "
              f"{', '.join(f'{r:.2f}×' for r in ratios)}; **median {median:.2f}×** (goal ≥ 3×: {verdict}); "
              f"gateway {min(g_rps):.0f}–{max(g_rps):.0f} req/s, PostGraphile {min(p_rps):.0f}–{max(p_rps):.0f} req/s")
    w(f"- Seed {meta['products']} products (`commerce-gateway seed`, release, new database incl. migrations): "
      f"**{meta['seed_wall_s']:.1f} s** wall; the binary's own report: `{meta['seed_report']}`")
    hwm = meta["gateway_vmhwm_kb"]
    goal = " (goal < 100 MB, taken as 100 MiB: " + ("met" if hwm and int(hwm) < 100 * 1024 else "NOT met") + ")"
    w(f"- Gateway RSS: idle before load VmRSS {mb_of(meta['gateway_idle_vmrss_kb'])}; "
      f"after all gateway load runs VmHWM (peak) **{mb_of(hwm)}**{goal}, VmRSS {mb_of(meta['gateway_after_vmrss_kb'])}")
    w(f"- PostGraphile RSS (reference): idle before load VmRSS {mb_of(meta['pgl_idle_vmrss_kb'])}; "
      f"peak VmHWM {mb_of(meta['pgl_vmhwm_kb'])}, VmRSS after load {mb_of(meta['pgl_after_vmrss_kb'])}")
    w(f"- Response equivalence (one request each, before the load): {meta['q1_check']}")
    for extra in meta.get("checks", []):
        w(f"- {extra}")
    w(f"- Statements/request: gateway from `extensions.stats.sqlStatements` of one request per case to a "
      f"separate gateway started with QUERY_STATS=true; PostGraphile: {meta['pgl_statements_note']}")
    if meta.get("data_mismatch"):
        w("")
        w("**WARNING: the gateway's and PostGraphile's answers differ beyond the product ids (see the checks "
          "above; responses in bench/out/responses/).**")
    if failed:
        w("")
        w("**WARNING: some load runs saw non-2xx responses, GraphQL errors or socket errors (see the table and "
          "bench/out/runs/, bench/out/wrk-*.txt).**")
    w("")
    w(f"Whole run: {meta.get('elapsed', 'n/a')}.")
    print("\n".join(lines))
    if failed:
        sys.exit(3)


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    table = {"body": (cmd_body, 3), "verify": (cmd_verify, 3), "compare": (cmd_compare, 3),
             "stats": (cmd_stats, 1), "report": (cmd_report, 1)}
    if cmd not in table or len(args) != table[cmd][1]:
        die(__doc__)
    table[cmd][0](*args)


if __name__ == "__main__":
    main(sys.argv)
