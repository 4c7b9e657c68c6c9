"""The screens over the main one, one per file: the views (diff, log, graph, merge) and the
dialogs (help, confirm).

A view that needs more than a snapshot (a diff, a log) fetches it through the
`Monitor` in a thread worker, never on the event loop.
"""
