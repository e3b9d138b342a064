"""Checks that look at both stores and trust no local state: `diff` compares listings,
`verify` reads every byte (or a sample) and compares content, headers, metadata and tags.
`endpoints` checks that an alias answers and a policy's buckets exist and are versioned."""
