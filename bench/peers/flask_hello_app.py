"""The smallest Flask app that answers like a model server: one route, one constant JSON answer.

Beside ``hello_app`` (raw WSGI, no framework) it is the second ceiling: what Flask's own request
handling (request context, routing, response object) costs on the same WSGI server, before any
model, validation or metrics.  It reads the body, as every server in the comparison must.
"""

from flask import Flask, Response, request

app = Flask(__name__)
BODY = b'{"prediction":[0.0]}'


@app.post("/")
def predict() -> Response:
    request.get_data()
    return Response(BODY, content_type="application/json")
