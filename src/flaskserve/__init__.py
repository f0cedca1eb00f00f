"""flaskserve: serve trained models over a fast, secure, standard HTTP API.

Importing the package loads no model and opens no socket; build an app with
:func:`flaskserve.app.create_app`.
"""

__version__ = "0.1.0"
