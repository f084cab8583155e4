#!/bin/sh
# A driver that crashes: it writes some log, then dies of a segmentation fault. The call
# is a crash (naming the signal), with the log written until then.
echo "crash: allocating the volume" >&2
kill -SEGV $$
