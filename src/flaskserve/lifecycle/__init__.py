"""Changing what is served while serving: load, reload and unload, kept in step across workers.

gunicorn's and granian's workers are separate processes, each with its own
registry; an action taken through the repository API in one of them reaches the
others through a journal in the run directory (:mod:`~flaskserve.lifecycle.reloader`,
:mod:`~flaskserve.lifecycle.journal`). With ``--watch``, a watcher
follows the repository folder and the key file (:mod:`~flaskserve.lifecycle.watcher`), and
:mod:`~flaskserve.lifecycle.publish` puts a new version in place atomically and
:mod:`~flaskserve.lifecycle.pinning` writes a model's pin into its settings file;
:mod:`~flaskserve.lifecycle.reconfiguration` applies the settings a ``HUP`` reads again;
:mod:`~flaskserve.lifecycle.draining` is what a server does between being told to stop and
stopping. Import rule: this package uses the models package and the settings, never Flask or the web edge.
"""
