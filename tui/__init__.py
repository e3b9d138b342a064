"""The mirrorline console: a Textual app over the engine's `Service` interface.

It reads snapshots and pages of tasks, and sends actions; it never imports the
queue, SQLite or an S3 client, so the same console drives an engine embedded
in this process or one across the network.
"""
