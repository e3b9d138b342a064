"""Numbers: counted in memory on the copy path (stats, meter), composed into one immutable
`Snapshot` every second (compose), and exported (prometheus). `snapshot` holds the wire
dataclasses and imports nothing heavy: the console and the HTTP client read them."""
