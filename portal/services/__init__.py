"""Domain operations shared by the views, the CLI and the ingest worker.

Services take the actor and objects as arguments, add and flush, and never
commit: whoever calls them owns the transaction. Two modules are the exception,
because what they write must be visible to the other processes at once, before
the slow work it guards: leases.py (which worker polls a mailbox) and
outbox_delivery.py (which sender holds a reply, and each attempt's result). Each
says so in its docstring; call them between units of work, never inside one.
"""
