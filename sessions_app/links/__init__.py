"""Payment links: a published price, and the sessions started from it (GET /pay/{slug}, or
POST /create_session with a publishable key). The price comes from the link, never the browser."""
