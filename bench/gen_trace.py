"""Generate a Mooncake-format trace of N requests with known structure (for the trace benchmarks).

    PYTHONPATH=py python bench/gen_trace.py N OUT.jsonl[.gz] [--seed S] [--rate R]

Structure: conversations start as a Poisson process (``--rate`` per second); each picks one of
16 (``--system-prompts``) system prompts (Zipf weights, 1,000-6,000 tokens), has a geometric number of turns (mean 4)
separated by exponential gaps (mean 60 s), and each turn sends the whole history again
(system prompt + earlier user and output tokens + new user tokens, lognormal, mean 900 and
300 tokens), capped at 64k tokens. Block ids are prefix-chained over 512-token blocks: a
system prompt's full blocks share ids across conversations, a conversation's later full blocks
keep their id across its turns, and the partial last block of a prompt gets a fresh id.
About 20 blocks and 250 bytes per request; 10^6 requests make ~250 MB. Not committed.
"""

from __future__ import annotations

import argparse
import gzip
import sys

import numpy as np

BS = 512
MAX_CONTEXT_TOKENS = 65536


def generate(n_requests: int, seed: int = 0, rate_per_s: float | None = None, system_prompts: int = 16):
    """Yield the trace lines (str, with newline) in arrival order."""
    rng = np.random.default_rng(seed)
    turns_mean = 4.0
    n_sessions = int(n_requests / turns_mean * 1.3) + 16
    rate = rate_per_s if rate_per_s else max(n_requests / 86400.0 / turns_mean * 1.0, 0.5)
    starts = np.cumsum(rng.exponential(1.0 / rate, n_sessions))
    turns = rng.geometric(1.0 / turns_mean, n_sessions)
    n_sys = max(system_prompts, 1)
    sys_len = rng.integers(1000, 6001, n_sys) if system_prompts else np.zeros(1, dtype=np.int64)
    sys_w = 1.0 / np.arange(1, n_sys + 1)
    sys_kind = rng.choice(n_sys, n_sessions, p=sys_w / sys_w.sum())
    sess = np.repeat(np.arange(n_sessions), turns)
    turn_idx = np.arange(sess.size) - np.repeat(np.cumsum(turns) - turns, turns)
    gaps = rng.exponential(60.0, sess.size)
    gaps[turn_idx == 0] = 0.0
    t = np.repeat(starts, turns) + (np.cumsum(gaps) - np.repeat((np.cumsum(gaps) - gaps)[turn_idx == 0], turns))
    user = np.maximum(1, rng.lognormal(np.log(900) - 0.5, 1.0, sess.size)).astype(np.int64)
    out = np.maximum(1, rng.lognormal(np.log(300) - 0.5, 1.0, sess.size)).astype(np.int64)
    step = user + out
    before = np.cumsum(step) - np.repeat((np.cumsum(step) - step)[turn_idx == 0], turns) - step
    inp = sys_len[sys_kind[sess]] + before + user
    keep = inp <= MAX_CONTEXT_TOKENS
    order = np.argsort(t[keep], kind="stable")[:n_requests]
    idx = np.nonzero(keep)[0][order]
    if idx.size < n_requests:
        raise SystemExit("not enough requests generated; raise the session count")
    sys_full = sys_len // BS
    sys_base = np.concatenate([[0], np.cumsum(sys_full)])[:-1]
    sess_base = int(sys_full.sum()) + np.arange(n_sessions, dtype=np.int64) * (MAX_CONTEXT_TOKENS // BS + 1)
    fresh = int(sess_base[-1]) + MAX_CONTEXT_TOKENS // BS + 2
    t0 = t[idx[0]]
    for r in idx.tolist():
        s = int(sess[r])
        k = int(sys_kind[s])
        x = int(inp[r])
        nfull = x // BS
        ks = min(int(sys_full[k]), nfull)
        sb = int(sys_base[k])
        base = int(sess_base[s])
        ids = list(range(sb, sb + ks)) + list(range(base + ks, base + nfull))
        if x % BS:
            ids.append(fresh)
            fresh += 1
        yield ('{"timestamp": %d, "input_length": %d, "output_length": %d, "hash_ids": [%s]}\n'
               % (int((t[r] - t0) * 1000), x, int(out[r]), ", ".join(map(str, ids))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=None, help="conversations per second")
    p.add_argument("--system-prompts", type=int, default=16, help="shared system prompts (0: none)")
    a = p.parse_args(argv)
    opener = (lambda f: gzip.open(f, "wt", compresslevel=1)) if a.out.endswith(".gz") else (lambda f: open(f, "w"))
    with opener(a.out) as fh:
        buf = []
        for line in generate(a.n, a.seed, a.rate, a.system_prompts):
            buf.append(line)
            if len(buf) >= 20000:
                fh.write("".join(buf))
                buf.clear()
        fh.write("".join(buf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
