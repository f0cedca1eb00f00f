"""What is served: signatures, loaders per format, the registry of names and versions, trust rules.

Pure: nothing here imports Flask or Werkzeug, and importing loads no model and no
framework (loaders import their library when they load a file). May import
``access``, ``settings`` and ``errors``; never ``protocols``, ``inference`` or any
layer above (see docs/architecture.md; ``make lint`` checks it).
"""
