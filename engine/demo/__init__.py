"""A lab of real parts for the demo, the fault tests, the benchmarks and the screenshots.

    lab       two SeaweedFS stores (seaweed), a fault proxy before the target (faults,
              framing, pacing), aliases and two policies
    workload  a seeded plan (mix) carried out at an adjustable rate; events posts each
              write to the engine's webhook as MinIO would
    session   traffic, events and fault keys while the engine runs (an engine attachment)
    stage     lab + API socket + session, set up and torn down as one
    headless  `demo --headless`: run, print, verify;  embedded / remote: the console's way in
    control   the DemoControl interface the console sees (and nothing else of this package)

Nothing here loads textual.
"""
