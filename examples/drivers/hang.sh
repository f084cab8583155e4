#!/bin/sh
# A driver that never answers, with a child of its own: the call times out, both are
# killed (the whole process group), and the step fails, so the workflow rolls back.
# With $OPSLEDGER_DRIVER_STATE set, it notes its own and its child's process ids there.
echo "hang: waiting for an answer that never comes" >&2
sleep 3600 &
if [ -n "${OPSLEDGER_DRIVER_STATE:-}" ]; then
    echo "$$ $!" > "$OPSLEDGER_DRIVER_STATE/hang.pids"
fi
wait
