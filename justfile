# Retain developer recipes. `just --list` shows them.

# Build every crate.
build:
    cargo build --workspace

# The test suite (SQLite and a throwaway PostgreSQL cluster).
test:
    cargo test --workspace

# Lints as CI runs them.
lint:
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Everything CI does, including installing PostgreSQL when missing.
ci:
    bash .ci/run

# Run the product: all four services in one process, with the demo portfolio.
run:
    cargo run --release -p retain -- demo

# Render and check the Kubernetes manifests (kubectl and kubernetes-validate).
deploy-check:
    python3 deploy/check.py --self-test

# Benchmarks with their same-run baselines (see docs/BENCHMARKS.md).
bench:
    cargo bench -p retain-bus --bench bus_throughput
    cargo bench -p retain-domain --bench domain
    cargo build --release --bins
    target/release/retain-loadgen

# The ingestion load generator alone (it starts the release
# retain-ingestion binary); pass options, e.g.
# `just loadgen --backend postgres --clients 8`.
loadgen *ARGS:
    cargo build --release --bins
    target/release/retain-loadgen {{ARGS}}

# The four services as processes under load: CPU, memory and bus backlog
# per process (the Kubernetes sizing).
pods *ARGS:
    cargo build --release --bins
    python3 tests/load/pods.py {{ARGS}}

# 1, 2 and 4 replicas of each service: throughput, fairness, outcome.
scale *ARGS:
    cargo build --release --bins
    python3 tests/load/scale.py {{ARGS}}

# The ingestion service on the reference configuration (SQLite file
# retain.db in the current directory; tokens from the config file).
ingestion *ARGS:
    cargo run -p retain-ingestion -- --config deploy/config/retain.toml {{ARGS}}
