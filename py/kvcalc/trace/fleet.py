"""Fleets from a trace: K instances under a routing policy, and exclusive cache tiers.

Routing (the analytic calculator's ``cluster.routing`` values):

* ``affinity``: a session's requests go to one instance (``hash(session) mod K``) where the
  trace has sessions (Bailian chains, generic ``session_id``); otherwise by the request's first
  block, as prefix-aware routers do (``hash(key) mod K``, the key the row of the first request
  with that first block: the same whatever the ids' numbering, see :func:`first_block_keys`);
* ``random``: each request to a uniformly random instance (seeded numpy Generator);
* ``round_robin``: request ``r`` to instance ``r mod K``;
* ``pooled``: one shared cache of ``K x C`` (a global pool, as Mooncake's store).

Each instance is an exact LRU cache (:func:`.curve.lru_curve` on the requests routed to it) of
``C`` blocks; the fleet's hit rate is the sum of the instances' hits over the sum of their
lookups. Warm-up applies to each instance's own first requests.

Tiers (``tiers`` = list of ``{"name", "capacity_tokens" | "capacity_gib", "read_gb_per_s"}``,
fastest first) are exclusive and filled from one LRU stack per instance: a block is in tier j
when its stack distance lies in ``(C1 + ... + C(j-1), C1 + ... + Cj]``, so tier j's hit rate is
``H(C1 + ... + Cj) - H(C1 + ... + C(j-1))`` (the tiers together hit exactly what one cache of
their summed capacity hits). With ``kv_bytes_per_token``, each tier also gets the bytes it
serves per request and the time to read them at ``read_gb_per_s`` (GB = 1e9 bytes).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, require_int, require_number
from ..limits import CHOICE_DEFAULTS, limit
from ..units import GIB_BYTES
from .curve import HitCurve, lru_curve
from .loaders import Trace
from .sample import hash_ids

__all__ = ["ROUTINGS", "route", "route_keys", "first_block_keys", "subtrace", "fleet_curves", "fleet_at", "tier_split", "parse_cluster",
           "parse_tiers"]

ROUTINGS = ("affinity", "random", "round_robin", "pooled")
MAX_INSTANCES = int(limit("trace.cluster.instances").hi)
MAX_TIERS = 8


def parse_cluster(value) -> dict:
    """Validate ``cluster``: {"instances": 1..4096, "routing": one of ROUTINGS, "seed": int}."""
    if not isinstance(value, dict):
        raise InputError("cluster", value, '{"instances": K, "routing": "affinity"|...}', "not an object")
    unknown = sorted(str(k) for k in set(value) - {"instances", "routing", "seed"})
    if unknown:
        raise InputError(f"cluster.{unknown[0]}", value.get(unknown[0]), "instances, routing, seed", "unknown key")
    k = require_int("cluster.instances", value.get("instances", 1), 1, MAX_INSTANCES)
    routing = value.get("routing", CHOICE_DEFAULTS["trace.cluster.routing"])
    if not isinstance(routing, str) or routing not in ROUTINGS:
        raise InputError("cluster.routing", routing, "one of " + ", ".join(ROUTINGS), "unknown value")
    seed = require_int("cluster.seed", value.get("seed", 0), 0, 1 << 31)
    return {"instances": k, "routing": routing, "seed": seed}


def parse_tiers(value, block_size_tokens: int, kv_bytes_per_token: float | None) -> list[dict]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_TIERS:
        raise InputError("tiers", value, f"a list of 1 to {MAX_TIERS} tiers", "not a list of tiers")
    out = []
    for i, t in enumerate(value):
        f = f"tiers[{i}]"
        if not isinstance(t, dict):
            raise InputError(f, t, '{"name", "capacity_tokens" or "capacity_gib", "read_gb_per_s"}', "not an object")
        unknown = sorted(str(k) for k in set(t) - {"name", "capacity_tokens", "capacity_gib", "read_gb_per_s"})
        if unknown:
            raise InputError(f"{f}.{unknown[0]}", t.get(unknown[0]), "name, capacity_tokens, capacity_gib, "
                             "read_gb_per_s", "unknown key")
        name = t.get("name", f"tier {i + 1}")
        if not isinstance(name, str) or len(name) > 40:
            raise InputError(f"{f}.name", name, "a name of at most 40 characters", "not a name")
        if ("capacity_tokens" in t) == ("capacity_gib" in t):
            raise InputError(f"{f}.capacity_tokens", t.get("capacity_tokens"), "exactly one of capacity_tokens, "
                             "capacity_gib", "capacity missing or given twice")
        if "capacity_tokens" in t:
            tokens = require_number(f"{f}.capacity_tokens", t["capacity_tokens"], 0.0, 1e15)
        else:
            gib = require_number(f"{f}.capacity_gib", t["capacity_gib"], 0.0, 1e7)
            if not kv_bytes_per_token:
                raise InputError(f"{f}.capacity_gib", gib, "capacity_tokens, or kv_bytes_per_token in the request",
                                 "GiB needs kv_bytes_per_token")
            tokens = gib * GIB_BYTES / kv_bytes_per_token
        bw = t.get("read_gb_per_s")
        bw = None if bw is None else require_number(f"{f}.read_gb_per_s", bw, 0.0, 1e6, lo_open=True)
        out.append({"name": name, "capacity_tokens": tokens, "capacity_blocks": int(tokens // block_size_tokens),
                    "read_gb_per_s": bw})
    return out


def first_block_keys(first: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Routing key of each request by its first block: the row of the first request with the same
    first block (an empty prompt, ``has`` false: its own row).

    Invariant under any renumbering of the block ids, so a loaded trace (dense ids) and the
    streaming scan (the file's raw ids, :func:`.fleet_sample.sampled_fleet`) route alike.
    """
    n = first.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    it = np.int32 if n < (1 << 31) - 1 else np.int64       # halves the temporaries of a long trace
    rows = None if has.all() else np.flatnonzero(has).astype(it)
    vals = first if rows is None else first[rows]
    perm = np.argsort(vals, kind="stable").astype(it)      # equal first blocks together, rows ascending
    srt = vals[perm]
    del vals
    start = np.empty(perm.shape[0], dtype=bool)
    if start.size:
        start[0] = True
        np.not_equal(srt[1:], srt[:-1], out=start[1:])
    del srt
    group = np.cumsum(start, dtype=it)
    group -= 1
    firsts = perm[start]                                   # the first row (within vals) of each group
    del start
    key_sorted = firsts[group]
    del group, firsts
    sub = np.empty(perm.shape[0], dtype=it)
    sub[perm] = key_sorted
    del perm, key_sorted
    if rows is None:
        return sub.astype(np.int64)
    key = np.arange(n, dtype=np.int64)
    key[rows] = rows[sub]
    return key


def route_keys(n: int, instances: int, routing: str, seed: int = 0, *, session_ids: np.ndarray | None = None,
               first_keys=None) -> tuple[np.ndarray, str]:
    """(instance of each of ``n`` requests, how the key was chosen): the routing of :func:`route`
    from per-request keys (``session_ids``: -1 where none; ``first_keys``: :func:`first_block_keys`
    or a callable giving them, called only when affinity needs them)."""
    if routing == "pooled" or instances == 1:
        return np.zeros(n, dtype=np.int64), "one cache" if instances == 1 else "one shared pool"
    if routing == "round_robin":
        return np.arange(n, dtype=np.int64) % instances, "request index mod K"
    if routing == "random":
        return np.random.default_rng(seed).integers(0, instances, n).astype(np.int64), f"uniform (seed {seed})"
    if session_ids is not None and session_ids.size and (session_ids >= 0).all():
        key, how = session_ids.astype(np.int64), "session"
    else:
        key = first_keys() if callable(first_keys) else first_keys
        how = "first block (no sessions in the trace)"
    return (hash_ids(np.asarray(key, dtype=np.int64), seed) % np.uint64(instances)).astype(np.int64), \
        f"hash of the {how}"


def route(trace: Trace, instances: int, routing: str, seed: int = 0) -> tuple[np.ndarray, str]:
    """(instance of each request, how the key was chosen)."""
    def first_keys():
        off = trace.block_offsets
        has = np.diff(off) > 0
        first = np.zeros(trace.n_requests, dtype=np.int64)
        first[has] = trace.block_ids[off[:-1][has]]
        return first_block_keys(first, has)
    return route_keys(trace.n_requests, instances, routing, seed, session_ids=trace.session_ids,
                      first_keys=first_keys)


def subtrace(trace: Trace, rows: np.ndarray) -> Trace:
    """The requests ``rows`` (increasing) of a trace, with their block ids unchanged."""
    off = trace.block_offsets
    cnt = np.diff(off)[rows]
    new_off = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(cnt, out=new_off[1:])
    idx = np.repeat(off[:-1][rows] - new_off[:-1], cnt.astype(np.intp)) + np.arange(int(new_off[-1]), dtype=np.int64)
    return Trace(trace.timestamps_s[rows], trace.input_tokens[rows], trace.output_tokens[rows], new_off,
                 trace.block_ids[idx], trace.block_size_tokens, trace.format, trace.session_ids[rows],
                 np.full(rows.size, -1, dtype=np.int64), dict(trace.info))


def fleet_curves(trace: Trace, instances: int, routing: str, *, seed: int = 0, full_blocks_only: bool = True,
                 warmup_fraction: float = 0.0) -> tuple[list[HitCurve], str]:
    """One exact LRU curve per instance (a single one for pooled)."""
    inst, how = route(trace, instances, routing, seed)
    if routing == "pooled" or instances == 1:
        return [lru_curve(trace, full_blocks_only=full_blocks_only, warmup_fraction=warmup_fraction)], how
    curves = []
    for k in range(instances):
        rows = np.nonzero(inst == k)[0]
        if rows.size:
            curves.append(lru_curve(subtrace(trace, rows), full_blocks_only=full_blocks_only,
                                    warmup_fraction=warmup_fraction))
    return curves, how


def fleet_at(curves: list[HitCurve], capacities_blocks, pooled_instances: int = 1) -> dict:
    """Fleet block and token hits / rates with ``capacities_blocks`` per instance."""
    c = np.asarray(capacities_blocks, dtype=np.float64) * pooled_instances
    bh = np.zeros(c.shape, dtype=np.int64)
    th = np.zeros(c.shape, dtype=np.int64)
    bt = tt = 0
    for cv in curves:
        b, t = cv.hits_at(c)
        bh += b
        th += t
        bt += cv.blocks_total
        tt += cv.tokens_total
    return {"block_hits": bh, "token_hits": th, "blocks_looked_up": bt, "prompt_tokens": tt,
            "block_hit_rate": bh / bt if bt else np.zeros(c.shape),
            "token_hit_rate": th / tt if tt else np.zeros(c.shape)}


def tier_split(curves: list[HitCurve], tiers: list[dict], pooled_instances: int = 1,
               kv_bytes_per_token: float | None = None, n_requests_counted: int | None = None) -> list[dict]:
    """Exclusive tiers from one LRU stack per instance: H(C1+..+Cj) - H(C1+..+C(j-1))."""
    bounds = np.cumsum([0] + [t["capacity_blocks"] for t in tiers])
    at = fleet_at(curves, bounds, pooled_instances)
    out = []
    for j, t in enumerate(tiers):
        row = {"name": t["name"], "capacity_blocks": t["capacity_blocks"], "capacity_tokens": t["capacity_tokens"],
               "cumulative_capacity_blocks": int(bounds[j + 1]),
               "block_hits": int(at["block_hits"][j + 1] - at["block_hits"][j]),
               "token_hits": int(at["token_hits"][j + 1] - at["token_hits"][j]),
               "block_hit_rate": float(at["block_hit_rate"][j + 1] - at["block_hit_rate"][j]),
               "token_hit_rate": float(at["token_hit_rate"][j + 1] - at["token_hit_rate"][j])}
        if kv_bytes_per_token and n_requests_counted:
            read_bytes = row["token_hits"] * kv_bytes_per_token / n_requests_counted
            row["read_bytes_per_request"] = read_bytes
            if t["read_gb_per_s"]:
                row["read_s_per_request"] = read_bytes / (t["read_gb_per_s"] * 1e9)
        out.append(row)
    return out
