"""The fork server: task programs started by fork from a warm process, not a new interpreter.

`server` listens on a unix socket and forks; `child` is what each fork does
(take over the pane's descriptors, become the allowed target, report its end);
`client` is the tiny pane program (standard library only, run by path) and the
wire protocol. The design and the wiring: docs/FORKSERVER.md.

May import: errors, fmt. Targets are loaded by import path at run time, named
by whoever starts the server (an allow-list), never imported here.
"""
