"""Replication: changes detected, queued, dispatched per target and copied, in that order.

    detector ── scanner ──► queue (engine.state) ◄── dispatcher ──► transfer
      (a scan per policy, event hints,   (leases per key, retries,   (one task against
       a paced tag sweep)                 link checks, recorder)      the target store)

`resync` walks a whole source again; `health` keeps one Link per endpoint; `bandwidth`
is the per-policy token bucket. Stores are reached only through `engine.s3.ObjectStore`.
"""
