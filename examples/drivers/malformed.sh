#!/bin/sh
# A driver that exits 0 but answers in prose instead of a JSON object.
echo "malformed: done" >&2
echo "created vm web-01, all good"
