"""Handing incidents on to the systems that act on them, exactly once as they see it.

`store.outbox` keeps what has to go out (written with the incident change); here are the
pieces that send it: `messages` (what a handoff says, masked), `adapters` (one interface,
HTTP implementations for the 110 CAD and 12345), `relay` (claims, retries, dead letters),
`local_receivers` (LOCAL stand-ins for development and tests) and `wiring` (from the
environment to a running relay).
"""
