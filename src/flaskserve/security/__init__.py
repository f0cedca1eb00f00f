"""API keys, rate limits, TLS, security headers, CORS and the audit log, as Flask extensions.

Guards read each route's declared access (:mod:`flaskserve.access`) and render
refusals with :mod:`flaskserve.web.errors`; nothing here imports ``flaskserve.api``.
"""
