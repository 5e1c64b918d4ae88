"""gunicorn's logger with access tokens taken out of the request line, path, query and referer.

Set in the Procfile (`--logger-class core.gunicorn_logging.RedactingLogger`), so an access log, once
turned on with `--access-logfile`, and gunicorn's own error lines never hold an access link.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from core.logs import RedactTokensFilter, redact

# r: request line, U: path, q: query, f: Referer (the access page links to its own PDF).
_ATOMS = ("r", "U", "q", "f", "{referer}i")


class RedactingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in _ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact(atoms[key])
        return atoms

    def setup(self, cfg):
        super().setup(cfg)
        # On the logger, not a handler: gunicorn's error log does not propagate, and a log config
        # may replace its handlers. Every method (error, exception, log, ...) passes through it.
        # setup runs again on a config reload, hence once only.
        if not any(isinstance(f, RedactTokensFilter) for f in self.error_log.filters):
            self.error_log.addFilter(RedactTokensFilter())
