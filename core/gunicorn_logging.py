"""gunicorn's logger with access tokens taken out of the request line, path, query and referer.

Set in the Procfile (`--logger-class core.gunicorn_logging.RedactingLogger`), so an access log, once
turned on with `--access-logfile`, and gunicorn's own error lines never hold an access link.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from core.logs import redact

# r: request line, U: path, q: query, f: Referer (the access page links to its own PDF).
_ATOMS = ("r", "U", "q", "f", "{referer}i")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms

    def _redacted(self, msg, args) -> str:
        # Formatted here, then passed on without args (logging formats a message only when it has args).
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join([str(msg), *map(str, args)])
        return redact(text)

    def error(self, msg, *args, **kwargs):
        super().error(self._redacted(msg, args), **kwargs)

    def warning(self, msg, *args, **kwargs):
        super().warning(self._redacted(msg, args), **kwargs)

    def info(self, msg, *args, **kwargs):
        super().info(self._redacted(msg, args), **kwargs)

    def exception(self, msg, *args, **kwargs):
        super().exception(self._redacted(msg, args), **kwargs)

    def critical(self, msg, *args, **kwargs):
        super().critical(self._redacted(msg, args), **kwargs)

    def debug(self, msg, *args, **kwargs):
        super().debug(self._redacted(msg, args), **kwargs)
