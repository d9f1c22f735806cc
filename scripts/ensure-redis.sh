#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379 (the tests of hub-redis and
# the multi-node server use it). Starts one the way the machine's own is
# started when it is not answering; installs redis-server from Debian's
# packages if it is missing.
set -euo pipefail

answering() {
    if command -v redis-cli >/dev/null 2>&1; then
        [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]
    else
        # No client: speak RESP over bash's /dev/tcp.
        exec 3<>/dev/tcp/127.0.0.1/6379 2>/dev/null || return 1
        printf 'PING\r\n' >&3
        local reply
        IFS= read -r -t 2 reply <&3 || true
        exec 3>&-
        [ "${reply%$'\r'}" = "+PONG" ]
    fi
}

if answering; then
    echo "redis: answering on 127.0.0.1:6379"
    exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis: redis-server missing, installing it from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
dir=$(mktemp -d /tmp/duplex-redis.XXXXXX)
echo "redis: not answering, starting redis-server (data in $dir)"
redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$dir" --logfile "$dir/redis.log"
for _ in $(seq 1 50); do
    if answering; then
        echo "redis: started"
        exit 0
    fi
    sleep 0.1
done
echo "redis: did not start; see $dir/redis.log" >&2
exit 1
