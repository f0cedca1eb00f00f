"""The Flask-aware pieces that both the API and the security layer stand on.

Error rendering, declared routes and the one body reader live here, below
:mod:`flaskserve.api` and :mod:`flaskserve.security`, so neither borrows from the
other. Import rule: this package may import the core (errors, settings, access,
protocols, models) and Flask, never ``flaskserve.api``, ``flaskserve.security``
or ``flaskserve.app``.
"""
