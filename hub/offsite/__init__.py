"""The off-site copy: sealed files copied, as they are, to S3-compatible storage.

Modules, one job each: `naming` (opaque object names), `queue` (the durable upload
queue in the index), `triage` (which files are event footage, and so urgent),
`journal` (the sealed metadata a restore needs), `bucket` (the S3 client, streaming
and rate-capped), `uploader` (the thread that drains the queue and expires old copies),
`restore` (rebuilding a data directory from the bucket). DESIGN.md §16 describes them.
"""
