#!/bin/sh
# A stand-in for a database server (the demo image is busybox, offline):
# nc runs this once per connection; it reads one request line, VERB [ARG],
# and keeps its records in /data, the service's named volume.
read -r verb arg
case "$verb" in
PING) echo PONG ;;
PUT) echo "$arg" >>/data/records && echo OK ;;
COUNT) if [ -f /data/records ]; then wc -l </data/records; else echo 0; fi ;;
*) echo "ERR unknown verb: $verb" ;;
esac
