"""A real ``flaskserve serve`` over HTTPS, for the TLS tests (plain HTTP: ``tests/live_server.py``)."""

from __future__ import annotations

import signal

from live_server import RunningServer, ServerLauncher


class HttpsLauncher(ServerLauncher):
    """:class:`ServerLauncher` for servers that speak HTTPS: the URL, the client and the probe use TLS."""

    def start_https(
        self,
        *flags: str,
        verify: str | bool,
        client_cert: tuple[str, str] | None = None,
        workers: int = 1,
    ) -> RunningServer:
        return self.start(*flags, workers=workers, https=True, verify=verify, client_cert=client_cert)

    def stop_all(self) -> None:
        """Stop every server at once: these tests check requests, not graceful shutdown."""
        for server in self.started:
            server.session.close()
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGQUIT)  # gunicorn's quick shutdown
        for server in self.started:
            server.stop()
