"""Inference logging: a record of what each prediction was asked and answered, written off the hot path.

* :mod:`.record` — one request's record, and how it becomes JSON with the
  model's redactions applied (features hashed or dropped by name).
* :mod:`.writer` — the bounded queue of one worker and the thread that drains it
  into a sink in batches; what does not fit, or does not reach the sink, is dropped
  and counted, never waited for.
* :mod:`.sinks` — where records go, by the URL's scheme: ``postgresql://``
  (a table created on first use, batched ``COPY``), ``file://DIR`` (JSON Lines
  rotated by size, optionally gzipped) and ``http(s)://`` (CloudEvents in binary
  mode, as KServe's logger sends them).
"""
