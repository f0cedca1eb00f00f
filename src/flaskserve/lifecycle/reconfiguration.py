"""``HUP`` reads the configuration again: what a running server takes, and what waits for a restart.

The settings are read again as at start (the file, the ``FLASKSERVE_*``
environment, the command line's flags: :class:`~flaskserve.settings.SettingsSource`)
and compared with those in force, setting by setting. A setting that changed is
applied when a part of the server registered to take it (:meth:`Reconfiguration.on_change`:
the app wires the rate limits, CORS origins, logging, the model-call timeout and
the watch interval); every other change — the address, the workers, TLS, the
models' own sections... — keeps its old value until a restart, and one warning
names them all. A file that cannot be read or is invalid changes nothing (logged),
and nothing here ever raises to the signal's caller: a reload must not stop a
serving server.

The servers read the file in their master process, before they fork the workers
that replace the old ones (``HUP`` replaces every worker, under gunicorn and
granian alike): the file is read once, and every new worker starts with the same
settings. No Flask here: the parts that apply a setting are registered as functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flaskserve.errors import FlaskserveError
from flaskserve.settings import Settings

__all__ = ["Apply", "Reconfiguration"]

log = logging.getLogger("flaskserve.serving")

#: Puts the new settings' values of some settings in force; ``False`` when it cannot (e.g. turning
#: on a part the server was started without), which leaves them for a restart.
Apply = Callable[[Settings], bool]


@dataclass(frozen=True)
class _Taker:
    names: tuple[str, ...]
    apply: Apply


class Reconfiguration:
    """The settings in force, and the parts that take a change of some of them while serving."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._takers: list[_Taker] = []

    def on_change(self, *names: str, apply: Apply) -> None:
        """Have ``apply`` called with the new settings when any of the settings ``names`` changed."""
        unknown = [name for name in names if name not in Settings.model_fields]
        taken = [name for name in names for taker in self._takers if name in taker.names]
        if unknown or taken:
            raise ValueError(f"settings unknown or already taken: {', '.join(unknown + taken)}")
        self._takers.append(_Taker(names, apply))

    def reread(self, read: Callable[[], Settings]) -> Settings:
        """Read the settings with ``read`` and apply what can change; returns the settings now in force."""
        try:
            new = read()
        except FlaskserveError as exc:
            log.error(
                "the configuration was not reloaded: the configuration in force stays",
                extra={"error": exc.message},
            )
            return self.settings
        except Exception:
            log.exception("the configuration was not reloaded: the configuration in force stays")
            return self.settings
        return self.apply(new)

    def apply(self, new: Settings) -> Settings:
        """Put in force what of ``new`` a running server can take; returns the settings in force."""
        old = self.settings
        changed = [name for name in Settings.model_fields if getattr(old, name) != getattr(new, name)]
        taken = {name for taker in self._takers for name in taker.names}
        later = [name for name in changed if name not in taken]
        live = [name for name in changed if name in taken]
        effective = old.model_copy(update={name: getattr(new, name) for name in live})
        applied: list[str] = []
        for taker in self._takers:
            names = [name for name in taker.names if name in live]
            if not names:
                continue
            try:
                done = taker.apply(effective)
            except Exception:
                log.exception("applying reloaded settings failed", extra={"settings": names})
                done = False
            (applied if done else later).extend(names)
        self.settings = old.model_copy(update={name: getattr(new, name) for name in applied})
        if applied:
            log.info("configuration reloaded", extra={"applied": applied})
        elif not later:
            log.info("configuration reloaded: nothing changed")
        if later:
            log.warning(
                "configuration reloaded, but these settings changed and take effect only after a "
                f"restart (the server keeps their old values until then): {', '.join(sorted(later))}",
                extra={"restart_needed": sorted(later)},
            )
        return self.settings
