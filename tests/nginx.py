"""Debian's nginx as a test's load balancer or buffering proxy, on a loopback port of its own."""

from __future__ import annotations

import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from live_server import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """Debian's nginx in front of ``upstreams``, with a config and prefix of its own.

    It buffers request bodies before passing them on (nginx's default), keeps
    connections to the upstreams alive, and passes a request that met an error or
    a timeout to the next upstream.
    """

    def __init__(
        self,
        workdir: Path,
        upstreams: Sequence[str],
        *,
        connect_timeout_s: float = 1,
        read_timeout_s: float = 10,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "nginx.conf"
        servers = "\n".join(f"        server {address} max_fails=1 fail_timeout=2s;" for address in upstreams)
        self.config.write_text(
            textwrap.dedent(
                """\
                worker_processes 1;
                user root;
                pid {pid};
                error_log {workdir}/error.log warn;
                events {{ worker_connections 1024; }}
                http {{
                    access_log off;
                    client_body_temp_path {workdir}/body;
                    proxy_temp_path {workdir}/proxy;
                    fastcgi_temp_path {workdir}/fastcgi;
                    uwsgi_temp_path {workdir}/uwsgi;
                    scgi_temp_path {workdir}/scgi;
                    upstream fleet {{
                {servers}
                        keepalive 16;
                    }}
                    server {{
                        listen 127.0.0.1:{port};
                        location / {{
                            proxy_pass http://fleet;
                            proxy_http_version 1.1;
                            proxy_set_header Connection "";
                            proxy_set_header X-Forwarded-For $remote_addr;
                            proxy_connect_timeout {connect}s;
                            proxy_read_timeout {read}s;
                            proxy_send_timeout {read}s;
                            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
                            proxy_next_upstream_tries 3;
                            add_header X-Upstream $upstream_addr always;
                        }}
                    }}
                }}
                """
            ).format(
                pid=workdir / "nginx.pid",
                workdir=workdir,
                servers=servers,
                port=self.port,
                connect=connect_timeout_s,
                read=read_timeout_s,
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [NGINX, "-c", str(self.config), "-p", str(self.workdir), "-g", "daemon off;"]
        with (self.workdir / "nginx.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {(self.workdir / 'nginx.log').read_text()}")
            try:
                requests.get(self.url + "/v2/health/live", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start listening in 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
