"""The mail pipeline: fetch, parse, route, thread and store buyer messages.

It uses `portal.models` and `portal.services`, never the web views. Mail itself
(sources, parser, reply MIME, SMTP) is the subpackage `ingest.mail`, which imports
nothing of the portal or the rest of ingest, so the services import it too.
"""
