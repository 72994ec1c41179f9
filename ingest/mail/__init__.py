"""Mail itself, apart from what Sellerdesk does with it: reading the IMAP and Maildir
sources (imap.py, maildir.py), parsing bytes into a ParsedMessage (parse.py,
parse_result.py), composing a reply (compose.py) and delivering it (smtp.py).

Pure of the portal: nothing here imports `portal` or the rest of `ingest`, so the
services and the pipeline both import it at module top without a cycle
(tests/test_layering.py checks this).
"""
