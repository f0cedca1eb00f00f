"""The views: the prediction edge every protocol's routes go through, and the other routes.

Each view is declared once with its path, ``access=`` and ``operation=``
(:mod:`flaskserve.web.routing`). May import every layer below it; nothing below
imports it.
"""
