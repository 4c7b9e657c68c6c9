"""A whole run: starting it (`launcher`, the forms a run is asked in in `forms`, `validation`),
the supervisor's loop (`supervisor`) and its parts (`picture`, `requests`, `liveness`,
`retries`, `gates`, `background`), its end (`ending`), tasks added to it (`adding`), the
processes it knows by their pids (`processes`), recovery (resume), cleanup, ports, user
hooks, doctor.

May import every layer below it: agents, merge, views and theirs.
"""
