"""Command runs: codespecs, buffers streamed through named pipes, and their supervisor.

    codespec   the YAML command spec, checked; durations
    registry   codespec versions, buffers and their chunks (SQLite beside the blob store)
    buffers    streaming bytes into and out of buffers, chunk by chunk
    runspec    ``-f`` files and flags, checked into one run spec
    launch     create, start (detached supervisor) and cancel command runs
    execute    ``run exec``: stdin to the input buffer, the output buffer to stdout
    follow     following a run: status changes, logs, liveness of writers
    detach     starting a supervisor: forked early (and told its run later), or spawned
    supervisor the detached process that owns and executes a run
    replicas   one replica: folder, named pipes, process, pumps, log readers
    executors  ``local`` and ``sandbox`` (bubblewrap); killing process trees
    pipes      the pump and log threads
"""
