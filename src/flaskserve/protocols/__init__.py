"""Wire formats as pure functions: bytes and a signature in, a validated matrix out, and back.

Each protocol implements :class:`~flaskserve.protocols.wire.InferenceProtocol`
and is entered once in :func:`~flaskserve.protocols.table.default_protocols`;
the web edge does everything around it. Pure: nothing here imports Flask or
Werkzeug. May import ``models``, ``access``, ``settings`` and ``errors``, never
``inference`` or a layer above (``make lint`` checks it).
"""
