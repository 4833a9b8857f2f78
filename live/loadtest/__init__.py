"""The load tester behind `manage.py loadtest`.

Virtual users (each its own session, CSRF token and WebSocket tabs) run a mix
of JSON API calls against a running server. The tester measures latency per
operation, how long each acknowledged write takes to reach every tab, and
whether the server kept every acknowledged write. Modules: `config` (options),
`schedule` (when to send), `stats` (histograms), `model` (the expected state
of each session), `tab` (one WebSocket), `client` (one virtual user), `worker`
(one process's event loop), `runner` (processes and progress) and `report`
(table, JSON and verdict).
"""
