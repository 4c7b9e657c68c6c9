"""The main screen's widgets, one per file: header, task table, ticker, detail (tail, info).

They only draw `Snapshot`s handed to them (`show(snapshot)`); the app polls and
decides. `cells` holds the small drawings they share.
"""
