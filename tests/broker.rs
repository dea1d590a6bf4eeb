//! End-to-end tests of a real broker (in process, port 0, fresh data dir) spoken to
//! over TCP with the `kafka-protocol` crate.

mod common;

use bytes::{Bytes, BytesMut};
use common::{Client, TestBroker, whole_batches};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

fn records(n: usize, start: usize, producer: (i64, i16, i32), compression: Compression) -> Bytes {
    let records = (start..start + n).map(|i| Record {
        producer_id: producer.0,
        producer_epoch: producer.1,
        sequence: producer.2 + (i - start) as i32,
        timestamp: 1_700_000_000_000 + i as i64,
        key: Some(Bytes::from(format!("k{i}"))),
        headers: [(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")))].into_iter().collect(),
        ..common::records::record(format!("value-{i}"))
    });
    common::records::encode_with(records, compression)
}

fn produce_request(topic: &str, partition: i32, acks: i16, data: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(acks).with_timeout_ms(10_000).with_topic_data(vec![
        produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(data)),
            ]),
    ])
}

fn fetch_request(topic: &str, partition: i32, offset: i64, max_wait: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(10 << 20),
                ]),
        ])
}

async fn create(client: &mut Client, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
}

async fn produce(client: &mut Client, topic: &str, data: Bytes) -> produce_response::PartitionProduceResponse {
    let r: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request(topic, 0, -1, data)).await;
    r.responses[0].partition_responses[0].clone()
}

async fn fetch_all(client: &mut Client, topic: &str) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let r: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request(topic, 0, offset, 0)).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let bytes = p.records.clone().unwrap();
        // As Kafka does, a fetch may end inside a batch (cut at the size limit); clients
        // decode the whole batches and fetch again from the next offset.
        let mut whole = whole_batches(bytes);
        if whole.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut whole).unwrap() {
            out.extend(set.records);
        }
        offset = out.last().unwrap().offset + 1;
    }
}

#[tokio::test]
async fn api_versions_including_unsupported_version() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    let r: ApiVersionsResponse = c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()).await;
    assert_eq!(r.error_code, 0);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 3));
    let init = r.api_keys.iter().find(|k| k.api_key == ApiKey::InitProducerId as i16).unwrap();
    assert_eq!(init.max_version, 5, "the crate cannot decode InitProducerId v6");
    // A future ApiVersions version gets a v0 answer with UNSUPPORTED_VERSION.
    let (id, bytes) = c.encode_request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut raw = bytes.to_vec();
    raw[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_raw(&raw).await;
    let r: ApiVersionsResponse = c.read_response(ApiKey::ApiVersions, 0, id).await;
    assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
    assert!(!r.api_keys.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn produce_fetch_round_trip_every_codec_and_restart() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "t", 1).await;
    let mut expected = 0;
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let p = produce(&mut c, "t", records(10, expected, (-1, -1, -1), codec)).await;
        assert_eq!(p.error_code, 0, "{codec:?}: {:?}", p.error_message);
        assert_eq!(p.base_offset, expected as i64);
        expected += 10;
    }
    let check = |recs: &[Record]| {
        assert_eq!(recs.len(), expected);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(r.value.as_deref(), Some(format!("value-{i}").as_bytes()));
            assert_eq!(r.timestamp, 1_700_000_000_000 + i as i64);
            assert_eq!(r.headers.get(&StrBytes::from_static_str("h")).cloned().flatten().as_deref(), Some(&b"v"[..]));
        }
    };
    check(&fetch_all(&mut c, "t").await);
    drop(c);
    let dir = broker.stop().await;
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut c = broker.client().await;
    check(&fetch_all(&mut c, "t").await);
    let p = produce(&mut c, "t", records(1, expected, (-1, -1, -1), Compression::None)).await;
    assert_eq!(p.base_offset, expected as i64);
    broker.stop().await;
}

#[tokio::test]
async fn pipelined_requests_answer_in_order() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "p", 1).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (id, bytes) = c.encode_request(
            ApiKey::Produce,
            9,
            &produce_request("p", 0, -1, records(3, i * 3, (-1, -1, -1), Compression::None)),
        );
        c.send_raw(&bytes).await;
        ids.push(id);
    }
    for (i, id) in ids.into_iter().enumerate() {
        let r: ProduceResponse = c.read_response(ApiKey::Produce, 9, id).await;
        assert_eq!(r.responses[0].partition_responses[0].base_offset, (i * 3) as i64);
    }
    broker.stop().await;
}

#[tokio::test]
async fn idempotent_retries_and_gaps() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "i", 1).await;
    let r: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000),
        )
        .await;
    assert_eq!(r.error_code, 0);
    let pid = r.producer_id.0;
    let first = records(5, 0, (pid, 0, 0), Compression::None);
    assert_eq!(produce(&mut c, "i", first.clone()).await.base_offset, 0);
    assert_eq!(produce(&mut c, "i", records(5, 5, (pid, 0, 5), Compression::Lz4)).await.base_offset, 5);
    // A retry of the first batch gets its original offset and is not stored twice.
    let dup = produce(&mut c, "i", first).await;
    assert_eq!((dup.error_code, dup.base_offset), (0, 0));
    let gap = produce(&mut c, "i", records(1, 10, (pid, 0, 42), Compression::None)).await;
    assert_eq!(gap.error_code, ResponseError::OutOfOrderSequenceNumber.code());
    assert_eq!(fetch_all(&mut c, "i").await.len(), 10);
    // Producer ids never repeat.
    let r2: InitProducerIdResponse =
        c.call(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default().with_transactional_id(None)).await;
    assert_ne!(r2.producer_id.0, pid);
    broker.stop().await;
}

#[tokio::test]
async fn long_poll_is_woken_by_an_append() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "w", 1).await;
    let (id, bytes) = c.encode_request(ApiKey::Fetch, 12, &fetch_request("w", 0, 0, 60_000));
    c.send_raw(&bytes).await;
    let mut producer = broker.client().await;
    produce(&mut producer, "w", records(1, 0, (-1, -1, -1), Compression::None)).await;
    // If the append did not wake the fetch, this would wait the whole minute.
    let r: FetchResponse =
        tokio::time::timeout(std::time::Duration::from_secs(30), c.read_response(ApiKey::Fetch, 12, id))
            .await
            .expect("fetch not woken");
    assert!(!r.responses[0].partitions[0].records.as_ref().unwrap().is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let broker = TestBroker::start(&[]).await;
    let hostile: Vec<Vec<u8>> = vec![
        0x7fff_ffffu32.to_be_bytes().to_vec(),                    // oversized
        (-5i32).to_be_bytes().to_vec(),                           // negative
        vec![0, 0, 0, 2, 0, 3],                                   // too short for a header
        vec![0, 0, 0, 10, 0x40, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff], // unknown api key
        // Metadata v1 whose topics array declares i32::MAX entries in a tiny frame.
        vec![0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 9, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
    ];
    for bytes in hostile {
        let mut bad = broker.client().await;
        bad.send_raw(&bytes).await;
        assert!(bad.read_frame().await.is_none(), "broker should close on {bytes:?}");
        let mut good = broker.client().await;
        let r: MetadataResponse = good.call(ApiKey::Metadata, 12, &MetadataRequest::default()).await;
        assert_eq!(r.brokers.len(), 1);
    }
    broker.stop().await;
}

/// An `acks=all` produce whose `timeout_ms` expires before the fsync still becomes
/// visible: giving up waiting must not cancel the high-watermark advance.
#[tokio::test]
async fn timed_out_acks_all_still_advances_high_watermark() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "to", 1).await;
    // ~16 MiB of fresh data so that the fsync reliably outlasts a zero timeout.
    let mut data = BytesMut::new();
    for b in 0..16u8 {
        data.extend_from_slice(&common::records::encode(
            (0..4u8).map(|i| Record { timestamp: 1_700_000_000_000, ..common::records::record(vec![b ^ i; 250_000]) }),
        ));
    }
    let req = produce_request("to", 0, -1, data.freeze()).with_timeout_ms(0);
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req).await;
    let code = r.responses[0].partition_responses[0].error_code;
    assert!(code == 0 || code == ResponseError::RequestTimedOut.code(), "{code}");
    // No further writes: the high watermark must still reach 64.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = fetch_all(&mut c, "to").await.len();
        if n == 64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "high watermark stuck: {n} of 64 records visible (produce code {code})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn future_timestamps_are_rejected_and_log_append_time_is_applied() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "ts", 1).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut rec = records(1, 0, (-1, -1, -1), Compression::None);
    // Re-encode one record two hours in the future.
    let mut set = RecordBatchDecoder::decode(&mut rec).unwrap();
    set.records[0].timestamp = now + 2 * 3_600_000;
    let p = produce(&mut c, "ts", common::records::encode(set.records)).await;
    assert_eq!(p.error_code, ResponseError::InvalidTimestamp.code());

    // A LogAppendTime topic stamps the broker's time on every record.
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("lat")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("message.timestamp.type"))
                    .with_value(Some(StrBytes::from_static_str("LogAppendTime"))),
            ]),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
    let p = produce(&mut c, "lat", records(3, 0, (-1, -1, -1), Compression::Lz4)).await;
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= now);
    let recs = fetch_all(&mut c, "lat").await;
    assert_eq!(recs.len(), 3);
    assert!(recs.iter().all(|r| r.timestamp_type == TimestampType::LogAppend));
    // Clients take every record's timestamp from the batch's maxTimestamp under
    // LogAppendTime (the kafka-protocol decoder does not, so check the header).
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("lat", 0, 0, 0)).await;
    let stored = r.responses[0].partitions[0].records.clone().unwrap();
    let header = jet::log::BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.max_timestamp, p.log_append_time_ms);
    assert!(jet::log::batch::verify_crc(&stored[..header.total_size()]));
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_ends_long_polls_instead_of_waiting_for_them() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "idle", 1).await;
    // Session epoch 0 opens a fetch session, which shows when the broker has the fetch.
    let (id, bytes) = c.encode_request(ApiKey::Fetch, 12, &fetch_request("idle", 0, 0, i32::MAX).with_session_epoch(0));
    c.send_raw(&bytes).await;
    let parked = async {
        while broker.broker.fetch_sessions.is_empty() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), parked).await.expect("fetch never reached the broker");
    let stop = tokio::spawn(broker.stop());
    let r: FetchResponse =
        tokio::time::timeout(std::time::Duration::from_secs(30), c.read_response(ApiKey::Fetch, 12, id))
            .await
            .expect("the long-poll must be answered at shutdown");
    assert!(r.responses[0].partitions[0].records.as_ref().unwrap().is_empty());
    tokio::time::timeout(std::time::Duration::from_secs(30), stop).await.expect("shutdown finished").unwrap();
}

#[tokio::test]
async fn fetch_checks_the_clients_leader_epoch() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    create(&mut c, "ep", 1).await;
    for (epoch, code) in [(-1, 0), (0, 0), (5, ResponseError::UnknownLeaderEpoch.code())] {
        let mut req = fetch_request("ep", 0, 0, 0);
        req.topics[0].partitions[0].current_leader_epoch = epoch;
        let r: FetchResponse = c.call(ApiKey::Fetch, 12, &req).await;
        assert_eq!(r.responses[0].partitions[0].error_code, code, "epoch {epoch}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn topic_compression_type_rewrites_batches() {
    let broker = TestBroker::start(&[]).await;
    let mut c = broker.client().await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("z")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(vec![
                create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("compression.type"))
                    .with_value(Some(StrBytes::from_static_str("zstd"))),
            ]),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0);
    let sent = records(50, 0, (-1, -1, -1), Compression::Lz4);
    assert_eq!(produce(&mut c, "z", sent.clone()).await.error_code, 0);
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("z", 0, 0, 0)).await;
    let stored = r.responses[0].partitions[0].records.clone().unwrap();
    let header = jet::log::BatchHeader::parse(&stored).unwrap();
    assert_eq!(header.compression(), Compression::Zstd);
    let got = RecordBatchDecoder::decode(&mut stored.clone()).unwrap().records;
    let want = RecordBatchDecoder::decode(&mut sent.clone()).unwrap().records;
    assert_eq!(got.len(), 50);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.key, &g.value, g.timestamp, &g.headers), (&w.key, &w.value, w.timestamp, &w.headers));
    }
    broker.stop().await;
}

async fn earliest_offset(c: &mut Client, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2)]),
    ]);
    let r: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &req).await;
    r.topics[0].partitions[0].offset
}

#[tokio::test]
async fn retention_by_size_advances_the_log_start() {
    let broker = TestBroker::start(&["--set", "log.retention.check.interval.ms=50"]).await;
    let mut c = broker.client().await;
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("r")))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                [("segment.bytes", "2000"), ("retention.bytes", "4000")]
                    .into_iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str(k))
                            .with_value(Some(StrBytes::from_static_str(v)))
                    })
                    .collect(),
            ),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    for i in 0..40 {
        assert_eq!(produce(&mut c, "r", records(10, i * 10, (-1, -1, -1), Compression::None)).await.error_code, 0);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let start = loop {
        let start = earliest_offset(&mut c, "r").await;
        if start > 0 {
            break start;
        }
        assert!(tokio::time::Instant::now() < deadline, "retention never ran");
        tokio::task::yield_now().await;
    };
    // Whole segments went; what is left is readable from the new start and ends at 400.
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("r", 0, start, 0)).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.log_start_offset, p.high_watermark), (0, start, 400));
    let r: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_request("r", 0, 0, 0)).await;
    assert_eq!(r.responses[0].partitions[0].error_code, ResponseError::OffsetOutOfRange.code());
    broker.stop().await;
}
