"""WSGI entry point: `gunicorn wsgi:app`, `flask --app wsgi …`."""

import os

from werkzeug.middleware.proxy_fix import ProxyFix

from portal import create_app

app = create_app()

# Behind a reverse proxy (nginx terminating TLS), trust that many proxies' X-Forwarded-*
# headers, so the login rate limit sees each client's address and redirects keep https.
_proxies = int(os.environ.get("TRUSTED_PROXIES", "0") or 0)
if _proxies:
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=_proxies, x_proto=_proxies, x_host=_proxies)
