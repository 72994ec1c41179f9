"""Domain operations shared by the views, the CLI and the ingest worker.

Services take the actor and objects as arguments, add and flush, and never
commit: whoever calls them owns the transaction. The few operations that must
commit sit in modules whose name and docstring say so: leases.py.
"""
