"""Mail itself, apart from what Sellerdesk does with it: reading the IMAP and Maildir
sources (imap.py, maildir.py), parsing bytes into a ParsedMessage (parse.py, the entry
point, and parse_result.py; parse.py's docstring names the modules it reads mail with),
composing a reply (compose.py) and delivering it (smtp.py).

Pure of the portal: nothing here imports `portal` or the rest of `ingest`, so the
services and the pipeline both import it at module top without a cycle
(tests/test_layering.py checks this).
"""
