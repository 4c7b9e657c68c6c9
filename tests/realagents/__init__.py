"""The real-agent test harness: real agent programs against a scripted model server.

See README.md in this folder: `modelserver` (the server), `script` (steps),
`dialects` (wire formats), `programs` (where the programs are), `homes`
(per-program config and environment), `costs` (Claude's prices), `fixtures`.
"""
