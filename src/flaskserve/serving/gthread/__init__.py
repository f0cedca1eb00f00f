"""gunicorn's threaded worker, except that a thread gets a connection only once its whole request is in,
and never waits for a client to take its answer.

The package: :mod:`.worker` (the worker, in the event loop), :mod:`.stream` (the
connection as a thread sees it), :mod:`.framing` (where a request's body ends),
:mod:`.pool` (the threads requests are handed to, and the queue that hands them
back) and :mod:`.request` (gunicorn's parser and request handling, their settings
read once).

gunicorn's ``gthread`` worker accepts in its event loop and hands each new
connection to a pool thread straight away. The thread waits up to 5 s for a
first byte and then reads the request line, headers and body with blocking
reads and no deadline, and writes the answer with blocking writes and no
deadline either. So a client that sends its headers a line a second, or its
body a few bytes a second, or that never reads a large answer, holds a thread
for as long as it likes: ``threads`` such clients per worker (4 by default) and
every other request waits behind them in the pool's queue. No gunicorn setting
bounds that time: ``timeout`` watches the worker's event loop, which stays
responsive; ``keepalive`` covers idle kept-alive connections; ``limit_request_*``
bound sizes; more threads only raise the number of slow clients it takes.
gunicorn also closes a connection after its answer with a blocking read of up to
2 s in the event loop itself, so clients that ask for ``Connection: close`` and
then neither read nor close stopped the whole worker for 2 s each.

:class:`HeadReadingWorker` reads every request (a new connection's first, and
each next one on a kept-alive connection) in the event loop without blocking,
the TLS handshake included: the head, then the body its ``Content-Length`` or
chunked framing announces (:mod:`.framing`). It hands the connection to a thread
with the bytes read so far once the request is complete; the thread writes what
the socket takes at once and leaves the rest of the answer to the event loop.
Its guarantees:

- no thread waits on a client, neither for its request nor to take its answer
  (beyond ``MAX_HELD_BYTES``, below);
- a head must be complete within ``header_timeout_s`` of the connection being
  accepted (or of the next request's first byte on a kept-alive connection),
  else the connection is closed, with a 408 if the client had begun a request;
- a body must keep coming: never ``body_timeout_s`` without a byte, and, once it
  has had ``body_timeout_s``, ``body_min_rate`` bytes a second on average (nginx's
  ``client_body_timeout`` and Apache's ``mod_reqtimeout`` minimum rate), else 408;
- a head larger than ``MAX_HEAD_BYTES`` is refused with a 431; a body declared or
  found larger than ``max_body_bytes`` with a 413 as soon as that is known;
  chunked framing gunicorn would refuse with a 400, so that gunicorn's reader
  never fails inside the app;
- a worker holds at most ``MAX_HELD_BYTES`` in memory for clients, bodies read and
  answers not yet taken together; a body read beyond it goes to a temporary file
  (as nginx does past ``client_body_buffer_size``), and a thread with an answer
  beyond it writes the answer itself, waiting at most ``send_timeout_s`` for each
  byte taken;
- an answer's client must take a byte of it every ``send_timeout_s``, else its
  connection is closed;
- the rest of a body the app left unread (a request refused before its body) is
  read past, from what the worker already holds, before the connection is kept:
  it is never taken for the start of the next request;
- a connection is closed after its answer in the event loop, which lingers
  ``LINGER_S`` at most, without blocking, for the client to close first;
- a stopping worker stops accepting and gives the connections it holds
  ``STOP_HEAD_LINGER_S`` at most for their next request, answered with
  ``Connection: close``: a connection closed unanswered just as its client sent
  a request would fail that request;
- INT and QUIT end the worker at once, and a worker still there the graceful
  timeout after a TERM (or after its master went) is ended (see
  :mod:`flaskserve.serving.signals`).

Parsing, the app call, the environ, the answer's framing, keep-alive's rules and
the graceful stop stay gunicorn's (docs/performance.md, "Threads, keep-alive and
backpressure", says what the worker does with fewer system calls). With
HTTP/2 enabled (``http_protocols`` naming ``h2``), connections take gunicorn's
own path, unchanged.
"""

from flaskserve.serving.gthread.worker import (
    MAX_HEAD_BYTES,
    MAX_HELD_BYTES,
    ClientLimits,
    HeadReadingWorker,
    head_reading_worker,
)

__all__ = ["MAX_HEAD_BYTES", "MAX_HELD_BYTES", "ClientLimits", "HeadReadingWorker", "head_reading_worker"]
