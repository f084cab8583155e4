#!/bin/sh
# A driver that fails and says why: exit status 3, and {"error": ...} on standard output.
cat > /dev/null
echo "fail: creating the volume" >&2
echo '{"error": "disk quota exceeded"}'
exit 3
