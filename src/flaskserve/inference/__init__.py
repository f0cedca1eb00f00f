"""The hot path: a served model and a validated matrix in, an array out — cached, batched, observed.

Format-neutral and pure: nothing here imports Flask, Werkzeug or a model
framework; format-specific fast paths come with the served model (see
``models/loaders/sklearn_kernels.py``). Takes its clock, observer and occupancy
as arguments. The shared cache tier (``shared_cache.py``) imports ``redis`` only
when ``cache_storage`` names a Redis. May import ``protocols``, ``models`` and below, never a layer
above (``make lint`` checks it).
"""
