"""The SQLite store: every durable fact about runs, tasks, attempts, events, requests and
predictions, with migrations; read and written by many processes at once.

May import: errors, states.
"""
