"""The mail pipeline: fetch, parse, route, thread and store buyer messages.

It uses `portal.models` and `portal.services`, never the web views.
"""
