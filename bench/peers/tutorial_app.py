"""The naive Flask model server that tutorials teach, kept as tutorials write it.

One global model loaded at import, a view that reads the JSON, builds a one-row list and calls
``model.predict``.  Run as a script it uses ``app.run()``, Flask's development server, which is
how most tutorials end; under gunicorn (``tutorial_app:app``) it is the "just add gunicorn"
step.  Nothing here is tuned, on purpose: it is the baseline flaskserve has to beat.

The only changes to the tutorial are the environment variables that tell it which model file
to load, which port to listen on and, for models with more than the tutorial's two features,
which JSON keys make up the row (``BENCH_FEATURES``, comma separated, default ``x,y``).
"""

import os

import joblib
from flask import Flask, jsonify, request

app = Flask(__name__)
model = joblib.load(os.environ["BENCH_MODEL"])
FEATURES = os.environ.get("BENCH_FEATURES", "x,y").split(",")


@app.route("/predict", methods=["POST"])
def predict():
    d = request.get_json()
    prediction = model.predict([[d[name] for name in FEATURES]])
    return jsonify({"prediction": prediction.tolist()})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["BENCH_PORT"]))
