#!/usr/bin/env bash
# `make cluster`: a 3-node NATS cluster with JetStream and 3 Trellis hosts on loopback, the
# shop spread across them, so that one command shows a cluster working. Everything lives in
# .cluster/ of this checkout; Ctrl-C stops it all.
#
#   host-1  http://127.0.0.1:8080  (admin :8081)  user-service, notification-service
#   host-2  http://127.0.0.1:8082  (admin :8083)  order-service
#   host-3  http://127.0.0.1:8084  (admin :8085)  gateway
#   NATS    nats://127.0.0.1:4222,4223,4224
#
# Every host serves every route: try http://127.0.0.1:8084/api/v1/users/1 after creating a
# user on any of them, and `trellis status --admin 127.0.0.1:8085` to see the remote links.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nats=$("$root/tools/nats-server.sh")
trellis="$root/target/release/trellis"
work="$root/.cluster"
mkdir -p "$work"
pids=()
hosts=()
stop() {
  trap - INT TERM EXIT
  echo "==> stopping the cluster"
  # The hosts first, so that they leave the directory while NATS still runs.
  kill "${hosts[@]}" 2>/dev/null || true
  wait "${hosts[@]}" 2>/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

routes="nats://127.0.0.1:6222,nats://127.0.0.1:6223,nats://127.0.0.1:6224"
for i in 1 2 3; do
  "$nats" --name "n$i" -a 127.0.0.1 -p $((4221 + i)) -js -sd "$work/nats-$i" \
    --cluster_name trellis --cluster "nats://127.0.0.1:$((6221 + i))" --routes "$routes" \
    >"$work/nats-$i.log" 2>&1 &
  pids+=($!)
done

spread=("user-service notification-service" "order-service" "gateway")
for i in 1 2 3; do
  folder="$work/host-$i/components"
  mkdir -p "$folder"
  rm -f "$folder"/*.wasm
  for component in ${spread[$((i - 1))]}; do
    cp "$root/dist/$component.wasm" "$folder/"
  done
  # The hosts share their components' data in JetStream key-value.
  printf '[storage]\nbackend = "nats"\n' >"$work/host-$i/trellis.toml"
  "$trellis" serve --config "$work/host-$i/trellis.toml" --components "$folder" --data "$work/host-$i/data" \
    --listen "127.0.0.1:$((8078 + 2 * i))" --admin-listen "127.0.0.1:$((8079 + 2 * i))" \
    --cluster "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224" --host-id "host-$i" \
    >"$work/host-$i.log" 2>&1 &
  hosts+=($!)
done

echo "==> waiting for the hosts to be ready"
for i in 1 2 3; do
  for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$((8078 + 2 * i))/health/ready" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
"$trellis" status --admin 127.0.0.1:8085 || true
cat <<TEXT

The cluster runs (logs in $work). Every host serves every route, for example:
  curl -s -X POST http://127.0.0.1:8080/api/v1/users -H 'content-type: application/json' -d '{"name":"Ada","email":"ada@example.com"}'
  curl -s -X POST http://127.0.0.1:8084/api/v1/orders -H 'content-type: application/json' \\
       -d '{"user_id":1,"items":[{"product_id":1,"product_name":"Widget","quantity":2,"price":9.5}],"shipping_address":"1 Main St"}'
  curl -s http://127.0.0.1:8084/api/v1/users/1/profile
  curl -s http://127.0.0.1:8082/api/v1/users/1/notifications   # the order's event, carried by JetStream
Ctrl-C stops it all.
TEXT
wait
