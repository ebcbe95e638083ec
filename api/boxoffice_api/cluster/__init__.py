"""The scale-out deployment: the engine as a replicated state machine on NATS JetStream.

Every state change is a command (``boxoffice.commands``); HTTP workers append commands, batched,
to one JetStream stream per shard (the command log, RAFT-replicated); engine replicas apply the
log strictly in sequence order through ``Engine.apply_encoded`` and answer results and reads.
See ``docs/scale-out.md``.

Modules:
    frames: the log message format (a batch of encoded commands).
    nats: starting and stopping ``nats-server`` processes on loopback (development, tests).
    log: the command log: stream and bucket set-up, batched appends.
    replica: an engine replica (``boxoffice replica``).
"""
