"""Replication: changes detected, queued, dispatched per target and copied, in that order.

    detector ── scanner ──► queue (engine.state) ◄── dispatcher ──► transfer
      (a scan per policy, event hints,   (leases per key, retries,   (one task against
       a paced tag sweep)                 link checks, recorder)      the target store)

`transfer` asks `rerun` first whether the target holds the version already (or soon
will: what a dead run sent may still land); `resync` walks a whole source again;
`health` keeps one Link per endpoint; `bandwidth` is the per-policy token bucket. Stores are reached only through `engine.s3.ObjectStore`.
"""
