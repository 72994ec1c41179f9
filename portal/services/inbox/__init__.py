"""The inbox: the threads a user may see, filtered, searched and paged by keyset.

Read in this order:

    filters.py  InboxQuery and FILTERS: what a user can ask for (a new filter is one entry)
    search.py   the search box: terms as conditions (SQLite FTS5; PostgreSQL tsvector, trigrams)
    paging.py   the sort orders and keyset cursors
    listing.py  list_inbox and filter_options: one statement per shape, built once
    live.py     change_token and nav_counts: what the open inbox asks (a long poll);
                newest_message_id and messages_after: the same for an open thread
    watch.py    the long poll: the process's watcher that wakes held live requests
"""

from portal.services.inbox.filters import (
    ASSIGNEE_FILTERS,
    FILTERS,
    SORTS,
    STATUS_FILTERS,
    InboxQuery,
)
from portal.services.inbox.listing import (
    PAGE_SIZE,
    ChannelOption,
    FilterOptions,
    InboxPage,
    filter_options,
    list_inbox,
)
from portal.services.inbox.live import (
    NavCounts,
    change_token,
    messages_after,
    nav_counts,
    newest_message_id,
)
from portal.services.inbox.row import InboxRow

__all__ = [
    "ASSIGNEE_FILTERS",
    "FILTERS",
    "PAGE_SIZE",
    "SORTS",
    "STATUS_FILTERS",
    "ChannelOption",
    "FilterOptions",
    "InboxPage",
    "InboxQuery",
    "InboxRow",
    "NavCounts",
    "change_token",
    "filter_options",
    "list_inbox",
    "messages_after",
    "nav_counts",
    "newest_message_id",
]
