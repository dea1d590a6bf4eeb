//! Jet: a Kafka-wire-compatible streaming broker.
//!
//! Stock Kafka clients (Java kafka-clients, librdkafka/kcat/confluent-kafka, franz-go,
//! sarama, kafka-python, aiokafka, kafkajs) connect to Jet unchanged. Jet speaks the
//! Kafka binary protocol at every version Kafka 4 serves, stores each partition as
//! append-only segment files in Kafka's own record-batch format, and acknowledges
//! `acks=all` writes only once they are fsynced (group commit).
//!
//! # Layout
//!
//! Read in this order:
//!
//! - [`config`]: command line, environment variables, a Kafka `server.properties`
//!   (`config::properties`, layered by `config::layers`, Kafka's keys sorted into used,
//!   ignored and refused by `config::kafka_keys`), the listeners (Kafka's named
//!   `listeners`/`advertised.listeners`) and the advertised host; [`security`] refuses the
//!   security settings Jet does not implement (fail closed).
//! - [`server`]: the TCP listeners and per-connection loop (ordered responses,
//!   concurrent waits, graceful shutdown). Tests start it on port 0 with [`server::run`];
//!   each connection knows its listener, and Metadata, DescribeCluster, FindCoordinator
//!   and KIP-951 leader hints name brokers by their address on that listener.
//!   `server::limits` caps connections (overall and per address); the accept loop backs
//!   off when the process is out of descriptors.
//! - [`admin`]: the admin HTTP server on its own port (`/livez`, `/readyz`, `/metrics`,
//!   `/v1/cluster`), bound before the data directory opens and stopped after the drain;
//!   `admin::healthcheck` is the client behind `jet healthcheck`.
//! - [`cli`]: the admin CLI in the `jet` binary (`jet topic|produce|consume|group|cluster`),
//!   a Kafka-protocol client that works against any Kafka-compatible broker.
//! - [`metrics`]: what the broker counts in atomics on its hot paths (per-partition
//!   traffic, requests and latency per API key, error codes, connections, fsync latency)
//!   and `metrics::collect`, which renders it with prometheus-client at scrape time
//!   together with partition counts, consumer-group lag (`group::lag`) and process figures.
//! - [`protocol`]: frames with a size cap, request decoding guarded by
//!   [`protocol::bounds`] (a schema walk that rejects lying array counts before the
//!   `kafka-protocol` crate allocates), response encoding, and [`protocol::splice`], which
//!   lets a Fetch response carry file ranges in place of record bytes.
//! - [`handler`]: one file per Kafka API key, dispatched from one `match` in
//!   [`handler::dispatch`]. Per-partition failures are error codes, never a dropped
//!   connection.
//! - [`broker`]: shared state — topics and partitions, the high watermark, idempotent
//!   producer state (with expiry and caps), topic configs, fetch sessions, and the fjall
//!   metadata store. `broker::lifecycle` makes topic create/grow/delete crash-safe (one
//!   durable intent each; partition directories name their topic id);
//!   `broker::log_cleaner` runs compaction on threads of its own; `broker::data_dir`
//!   locks the data directory and keeps Kafka's `meta.properties` (node and cluster id).
//!   `broker::replica` is the replication seam: handlers use every partition through the
//!   `Replica` trait (append → a `Commit` that resolves when the high watermark covers
//!   it, plan a read, offsets, leader and epoch, lookups, DeleteRecords), so the local
//!   log, the in-memory store of the handler tests (`broker::replica::memory`) and a raft
//!   group look the same to them.
//! - [`group`]: consumer groups — the classic protocol and KIP-848 as pure state
//!   machines, and the coordinator that keeps them (and committed offsets) as records of
//!   `__consumer_offsets`, written through the same partition append path as any topic.
//!   `group::durability` holds every answer until the records behind it are fsynced and
//!   rebuilds a partition's groups from the log (`group::loading`) when a write fails.
//! - [`log`]: one partition's segments (`.log`, `.index`, `.timeindex` named by 20-digit
//!   base offset), batch validation with bounded decompression, broker-side
//!   recompression (`compression.type`), crash recovery from the recovery point,
//!   retention, reads planned under the partition lock as exact file ranges (sent to the
//!   client with `sendfile`, never read into memory), and the group-commit flusher. Around
//!   it: `log::sealer` (a roll's fsyncs off the produce path), `log::open_files` (the
//!   broker-wide LRU of open segment files), `log::page_cache` (cold reads moved to the
//!   blocking pool), `log::damage` and `log::scrubber` (damaged ranges, found and fenced),
//!   `log::cleaner` (compaction: offset map, rewrite, swap), `log::epoch_history` (the
//!   leader-epoch history, Kafka's `leader-epoch-checkpoint`, which OffsetForLeaderEpoch
//!   answers from), `log::raft_index` and `log::raft_entries` (raft index ↔ offset
//!   translation beside the segments: final `.raftindex` sidecars written by seals, the
//!   active segment's `.raftgroups` written before the batches it groups, rebuilt on
//!   open), `log::retained` (a compacted raft log's data below raft's log, and a
//!   follower's staging of it when it installs a snapshot).
//! - [`raft`]: partition replication — `raft::TypeConfig` (term =
//!   Kafka leader epoch, `leader_id_std`), `raft::log_store` (the segment files as
//!   openraft's log store, passing openraft's storage conformance suite; vote and small
//!   state in `raft-state.json`), `raft::control` (blank and membership entries as
//!   control batches that consumers skip), `raft::network` (the broker-wide transport: one
//!   multiplexed TCP connection per peer carries every group's RPCs), `raft::partition_state`
//!   and `raft::replica_state` (the state machine: high watermark = end of the last applied
//!   entry, producer state rebuilt by applying; the leader's proposals in flight), and
//!   `broker::raft_replica` (a raft group behind the `Replica` seam; its `log_start`
//!   proposes DeleteRecords and retention and triggers the snapshots that let raft purge,
//!   its `compaction` lets the cleaner rewrite what raft purged).
//! - [`cluster`]: where replicas live — `cluster::placement`, the pure function that
//!   spreads replicas and preferred leaders across brokers and racks, and
//!   `cluster::gossip`, broker discovery and failure detection (memberlist 0.8.5) behind
//!   Jet's own `Discovery` trait (membership snapshots and events, leadership hints);
//!   only `gossip/backend.rs` names memberlist types; `gossip::reconnect` heals the view
//!   after a partition. `cluster::directory`: the live
//!   brokers Metadata, DescribeCluster and `/v1/cluster` list (gossip started at boot with
//!   `--seeds`/`--gossip-listen`), `--bootstrap-expect`, node-id conflicts.
//!   `cluster::metadata` and `cluster::controller`: the cluster metadata as records of a
//!   raft group's log applied to an image. `cluster::runtime` runs a broker's part of a
//!   cluster: the raft transport, its controller member (bootstrapped from the
//!   `--bootstrap-expect` set), topic administration through the controller (forwarded
//!   from other brokers), and a reconciler that opens a raft replica for every partition
//!   the image places here (`cluster::runtime::remote` stands in for the others).
//!   Partition groups have no raft timers: `cluster::runtime::elections` campaigns for
//!   groups whose leader is gone (gossip view, closed raft connections) and catches up
//!   returning brokers, so idle partitions cost nothing; `cluster::runtime::hand_off`
//!   moves leadership away on SIGTERM; `cluster::runtime::reassign` moves partitions
//!   between brokers (AlterPartitionReassignments) as raft membership changes;
//!   `cluster::runtime::rebalance` gives partitions back to their preferred leaders;
//!   `cluster::runtime::topic_changes` grows and reconfigures replicated topics;
//!   `cluster::runtime::producer_ids` hands out cluster-wide unique producer ids from
//!   controller-allocated blocks; `broker::in_sync` keeps the ISR
//!   (`replica.lag.time.max.ms`). `cluster::read_replica`: the follower a `client.rack` consumer is sent to (KIP-392).
//!   `group::replicated`: the group coordinator on a replicated `__consumer_offsets`
//!   partition, where it serves only while it leads.
//! - Transactions: [`txn`] is the transaction coordinator (`__transaction_state` in
//!   Kafka's records; InitProducerId, AddPartitionsToTxn, EndTxn; markers written to the
//!   partitions' leaders, here or with WriteTxnMarkers; timeouts; reload when a broker
//!   comes to lead a partition of it). Inside a partition, `broker::producer_batches` is
//!   the one path by which batches meet producer state (a transactional batch opens a
//!   transaction, a marker closes it), `broker::producer_state` keeps open transactions
//!   and the last stable offset, and `log::txn` holds the marker codec and the per-segment
//!   aborted-transaction index (`.txnindex`) that read_committed fetches list. A write
//!   that would open a transaction on a partition is first verified with the coordinator
//!   (KIP-890 part 1: `broker::txn_verification`, `txn::verify`). Transactional offset
//!   commits (AddOffsetsToTxn, TxnOffsetCommit) stay pending in the group coordinator
//!   until their marker settles them (`group::txn_offsets`).
//!
//! Tests: unit tests sit beside the code (`*_tests.rs` files where a module's tests are
//! long); `tests/` starts real brokers (in process on port 0, and the `jet` binary for
//! SIGKILL/SIGTERM/SIGSTOP, power loss on the FUSE file system of `tests/lazyfs`, network
//! partitions between network namespaces (`tests/netns`), descriptor and memory bounds)
//! and fuzzes requests and batches (seeds in `fuzz/corpus/`);
//! `compat-tests/` drives the binary with real Kafka clients.
//!
//! # Decisions that differ from the first design notes
//!
//! - **High watermark = durable end** even on a single node (Kafka's is the log end):
//!   consumers never see a write that a crash could take back, and with raft the high
//!   watermark simply becomes the commit index.
//! - **Requests on one connection are started in order, finished concurrently**: the
//!   order-sensitive part (a produce's append) runs on the connection's reader, waiting
//!   (fsync, long-poll) runs in its own task. Kafka instead serves one request per
//!   connection at a time.
//! - **A request body is walked against its schema before decoding** ([`protocol::bounds`]):
//!   the decoder preallocates from wire counts, and checking counts against the bytes
//!   left is the only way to make every request's allocation proportional to its size.
//! - **A compacted partition's raft snapshot carries data.** The design notes have a
//!   partition snapshot small (log start, producer state), the data below it gone on every
//!   replica. That holds for retention and DeleteRecords, not for compaction: the cleaner
//!   may rewrite only what raft will never read or send again, so a compacted replica
//!   purges sealed, committed segments from raft's log through a snapshot and keeps their
//!   data below it, and a follower that needs that snapshot also needs the data. It goes
//!   with the snapshot in chunks, read from the leader's segment files and staged by the
//!   follower ([`log::retained`]) — as much as a Kafka follower fetching from the log
//!   start would copy. Each replica's cleaner then compacts its own copy, as every Kafka
//!   broker's does: the same offsets and the same latest record of every key on every
//!   replica, not byte-identical files below raft's log.
//!
//! # Durability model
//!
//! A produce request's batches are appended to the active segment in request order;
//! the flusher then fsyncs every file with pending writes once per round (the round's
//! files concurrently), however many requests are waiting. Only then does the high watermark advance, the `acks=all`
//! response go out, and consumers see the data. `flush.ms` trades this for interval
//! flushing (weaker: a crash can lose acknowledged writes).

pub mod admin;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod group;
pub mod handler;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod raft;
pub mod security;
pub mod server;
pub mod txn;
