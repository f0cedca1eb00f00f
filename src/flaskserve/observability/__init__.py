"""Request tracking, metrics summed over workers and structured logs.

Flask-aware (the tracker hooks every request); never imports ``api`` or ``security``.
"""
