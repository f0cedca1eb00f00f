"""Data drift: how far the inputs and predictions being served have moved from the training data.

* :mod:`.profile` — the reference profile of one model version (``reference.json``
  beside the model, written by ``flaskserve profile``): per feature, bins from the
  training quantiles (numeric) or category frequencies (categorical), and the
  same for the predictions; the one function that counts values into those bins.
* :mod:`.text` — a text model's input as two numeric measures (length in tokens,
  share of tokens in the model's vocabulary, held out for the training texts),
  profiled and counted like features.
* :mod:`.statistics` — PSI, Kolmogorov-Smirnov and Jensen-Shannon between two
  binned distributions, and the PSI bands (stable < 0.1 ≤ moderate < 0.25 ≤ major).
* :mod:`.window` — each worker's rolling window of bin counts, kept where
  ``prometheus_client`` keeps every worker's metrics, and summed over workers when read.
* :mod:`.monitor` — the served side: holds each prediction's rows, counts them into
  the window in bulk off the request, and reads the drift report and gauges at scrape time.
"""
