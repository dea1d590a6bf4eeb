// Command jetcompat-go runs franz-go and sarama scenarios against a broker.
//
// Usage: jetcompat-go BOOTSTRAP SCENARIO [ARG...]   (BOOTSTRAP: host:port[,host:port...])
// Exits 0 and prints "OK SCENARIO" on success; exits 1 with "MISMATCH: ..." on stderr otherwise.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type mismatch struct{ msg string }

func (m mismatch) Error() string { return m.msg }

func fail(format string, a ...any) { panic(mismatch{fmt.Sprintf(format, a...)}) }

func must(err error, what string) {
	if err != nil {
		fail("%s: %v", what, err)
	}
}

func eq[T comparable](got, want T, what string) {
	if got != want {
		fail("%s: got %v want %v", what, got, want)
	}
}

func topicName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func waitUntil(what string, cond func() bool) {
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	fail("timed out waiting for %s", what)
}

// scenarioArgs are the command-line arguments after SCENARIO.
var scenarioArgs []string

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: jetcompat-go BOOTSTRAP SCENARIO [ARG...]")
		os.Exit(2)
	}
	bootstrap, scenario := os.Args[1], os.Args[2]
	scenarioArgs = os.Args[3:]
	scenarios := map[string]func(string){
		"franz-produce-consume":   franzProduceConsume,
		"franz-codecs":            franzCodecs,
		"kadm-admin":              kadmAdmin,
		"sarama-produce-consume":  saramaProduceConsume,
		"sarama-v3-codecs":        saramaV3Codecs,
		"franz-group-range":       franzGroupRange,
		"franz-group-cooperative": franzGroupCooperative,
		"franz-group-static":      franzGroupStatic,
		"franz-group-chained":     franzGroupChained,
		"sarama-group":            saramaGroup,
		"franz-cluster-failover":  franzClusterFailover,
		"franz-transactions":      franzTransactions,
	}
	fn, ok := scenarios[scenario]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(2)
	}
	defer func() {
		if r := recover(); r != nil {
			var m mismatch
			if e, ok := r.(error); ok && errors.As(e, &m) {
				fmt.Fprintln(os.Stderr, "MISMATCH:", m.msg)
			} else {
				fmt.Fprintln(os.Stderr, "ERROR:", r)
			}
			os.Exit(1)
		}
	}()
	fn(bootstrap)
	fmt.Println("OK", scenario)
}

// ------------------------------------------------------------------ franz-go

func kclient(bootstrap string, opts ...kgo.Opt) *kgo.Client {
	base := []kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.RequestTimeoutOverhead(30 * time.Second)}
	cl, err := kgo.NewClient(append(base, opts...)...)
	must(err, "kgo.NewClient")
	return cl
}

func kadmCreate(ctx context.Context, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	resp, err := adm.CreateTopics(ctx, partitions, 1, configs, topic)
	must(err, "kadm.CreateTopics")
	r, err := resp.On(topic, nil)
	must(err, "CreateTopics.On")
	must(r.Err, "create topic "+topic)
	waitUntil("topic "+topic+" leaders", func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil || len(td.Partitions) != int(partitions) {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader != 1 {
				return false
			}
		}
		return true
	})
}

type want struct {
	key, value []byte
	headers    []kgo.RecordHeader
	ts         time.Time
}

// consumePartition reads exactly n records from one partition with ConsumePartitions (no group).
func consumePartition(bootstrap, topic string, partition int32, from int64, n int) []*kgo.Record {
	cl := kclient(bootstrap, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consumed only %d of %d records from %s[%d] before the deadline", len(out), n, topic, partition)
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch error %s[%d]: %v", t, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func checkRecords(got []*kgo.Record, wants []want, firstOffset int64, what string) {
	eq(len(got), len(wants), what+": record count")
	for i, r := range got {
		w := wants[i]
		eq(r.Offset, firstOffset+int64(i), fmt.Sprintf("%s: offset of #%d", what, i))
		if !bytes.Equal(r.Key, w.key) || (r.Key == nil) != (w.key == nil) {
			fail("%s: key at offset %d: got %q want %q", what, r.Offset, r.Key, w.key)
		}
		if !bytes.Equal(r.Value, w.value) {
			fail("%s: value at offset %d: got %q want %q", what, r.Offset, r.Value, w.value)
		}
		eq(r.Timestamp.UnixMilli(), w.ts.UnixMilli(), fmt.Sprintf("%s: timestamp at offset %d", what, r.Offset))
		eq(r.Attrs.TimestampType(), int8(0), what+": timestamp type (CreateTime)")
		eq(len(r.Headers), len(w.headers), fmt.Sprintf("%s: header count at offset %d", what, r.Offset))
		for j, h := range r.Headers {
			if h.Key != w.headers[j].Key || !bytes.Equal(h.Value, w.headers[j].Value) {
				fail("%s: header %d at offset %d: got %s=%q want %s=%q", what, j, r.Offset, h.Key, h.Value, w.headers[j].Key, w.headers[j].Value)
			}
		}
	}
}

func produceWants(cl *kgo.Client, topic string, partition int32, wants []want) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, len(wants))
	for i, w := range wants {
		recs[i] = &kgo.Record{Topic: topic, Partition: partition, Key: w.key, Value: w.value, Headers: w.headers, Timestamp: w.ts}
	}
	res := cl.ProduceSync(ctx, recs...)
	must(res.FirstErr(), "ProduceSync")
	for i, r := range res {
		eq(r.Record.Offset, int64(i), fmt.Sprintf("produced offset of #%d", i))
		eq(r.Record.Partition, partition, "produced partition")
	}
}

// baseMs is one hour ago (whole second): recent enough for any retention.ms default.
var baseMs = (time.Now().UnixMilli() - 3_600_000) / 1000 * 1000

func makeWants(n int, tag string) []want {
	base := time.UnixMilli(baseMs)
	ws := make([]want, n)
	for i := range ws {
		var key []byte
		if i%25 != 0 {
			key = []byte("key-" + strconv.Itoa(i))
		}
		ws[i] = want{
			key:     key,
			value:   []byte(tag + "-" + strconv.Itoa(i) + "-" + strings.Repeat("q", i%64)),
			headers: []kgo.RecordHeader{{Key: "i", Value: []byte(strconv.Itoa(i))}, {Key: "tag", Value: []byte(tag)}},
			ts:      base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	return ws
}

func franzProduceConsume(bootstrap string) {
	ctx := context.Background()
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic := topicName("franz-pc")
	kadmCreate(ctx, adm, topic, 2, nil)

	// default producer: idempotent, acks=all
	cl := kclient(bootstrap, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	w0, w1 := makeWants(1500, "p0"), makeWants(700, "p1")
	produceWants(cl, topic, 0, w0)
	produceWants(cl, topic, 1, w1)
	cl.Close()

	checkRecords(consumePartition(bootstrap, topic, 0, 0, len(w0)), w0, 0, "partition 0")
	checkRecords(consumePartition(bootstrap, topic, 1, 0, len(w1)), w1, 0, "partition 1")
	// start in the middle
	checkRecords(consumePartition(bootstrap, topic, 0, 1000, 500), w0[1000:], 1000, "partition 0 from 1000")

	// offsets via kadm
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "ListEndOffsets")
	e0, _ := ends.Lookup(topic, 0)
	e1, _ := ends.Lookup(topic, 1)
	eq(e0.Offset, int64(1500), "end offset p0")
	eq(e1.Offset, int64(700), "end offset p1")
	starts, err := adm.ListStartOffsets(ctx, topic)
	must(err, "ListStartOffsets")
	s0, _ := starts.Lookup(topic, 0)
	eq(s0.Offset, int64(0), "start offset p0")
	byTs, err := adm.ListOffsetsAfterMilli(ctx, baseMs+300, topic)
	must(err, "ListOffsetsAfterMilli")
	t0, _ := byTs.Lookup(topic, 0)
	eq(t0.Offset, int64(300), "offset after milli p0")
}

func franzCodecs(bootstrap string) {
	ctx := context.Background()
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		topic := topicName("franz-" + name)
		kadmCreate(ctx, adm, topic, 1, nil)
		cl := kclient(bootstrap, kgo.ProducerBatchCompression(codecs[name]), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(20*time.Millisecond))
		ws := makeWants(2000, name)
		produceWants(cl, topic, 0, ws)
		cl.Close()
		checkRecords(consumePartition(bootstrap, topic, 0, 0, len(ws)), ws, 0, "codec "+name)
	}
}

func kadmAdmin(bootstrap string) {
	ctx := context.Background()
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	t1, t2 := topicName("kadm"), topicName("kadm")
	ret := "86400000"
	kadmCreate(ctx, adm, t1, 3, map[string]*string{"retention.ms": &ret})
	kadmCreate(ctx, adm, t2, 1, nil)

	// duplicate create -> TOPIC_ALREADY_EXISTS
	resp, err := adm.CreateTopics(ctx, 1, 1, nil, t1)
	must(err, "CreateTopics dup")
	r, _ := resp.On(t1, nil)
	if !errors.Is(r.Err, kerr.TopicAlreadyExists) {
		fail("duplicate create: got %v want TOPIC_ALREADY_EXISTS", r.Err)
	}

	tds, err := adm.ListTopics(ctx)
	must(err, "ListTopics")
	if !tds.Has(t1) || !tds.Has(t2) {
		fail("ListTopics lacks %s or %s: %v", t1, t2, tds.Names())
	}
	eq(len(tds[t1].Partitions), 3, "t1 partitions")
	for _, p := range tds[t1].Partitions.Sorted() {
		eq(p.Leader, int32(1), "leader")
		eq(len(p.Replicas), 1, "replicas")
		must(p.Err, "partition error")
	}
	if tds[t1].ID == [16]byte{} {
		fail("topic id of %s is zero", t1)
	}

	brokers, err := adm.ListBrokers(ctx)
	must(err, "ListBrokers")
	eq(len(brokers), 1, "broker count")
	eq(brokers[0].NodeID, int32(1), "broker id")
	eq(fmt.Sprintf("%s:%d", brokers[0].Host, brokers[0].Port), bootstrap, "broker address")

	rcs, err := adm.DescribeTopicConfigs(ctx, t1)
	must(err, "DescribeTopicConfigs")
	rc, err := rcs.On(t1, nil)
	must(err, "DescribeTopicConfigs.On")
	must(rc.Err, "describe configs")
	found := false
	for _, c := range rc.Configs {
		if c.Key == "retention.ms" {
			found = true
			eq(c.MaybeValue(), "86400000", "retention.ms")
		}
	}
	if !found {
		fail("retention.ms not in DescribeTopicConfigs")
	}

	dresp, err := adm.DeleteTopics(ctx, t1, t2)
	must(err, "DeleteTopics")
	for _, d := range dresp.Sorted() {
		must(d.Err, "delete "+d.Topic)
	}
	waitUntil("deleted topics to disappear", func() bool {
		tds, err := adm.ListTopics(ctx)
		return err == nil && !tds.Has(t1) && !tds.Has(t2)
	})
	dresp, err = adm.DeleteTopics(ctx, topicName("kadm-none"))
	must(err, "DeleteTopics unknown")
	for _, d := range dresp.Sorted() {
		if !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			fail("delete unknown topic: got %v want UNKNOWN_TOPIC_OR_PARTITION", d.Err)
		}
	}
}

// ------------------------------------------------------------------ sarama

func saramaProduceConsume(bootstrap string) {
	cfg := sarama.NewConfig() // default protocol version of this sarama release
	cfg.ClientID = "jet-compat-sarama"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	cfg.Net.DialTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond

	topic := topicName("sarama")
	ca, err := sarama.NewClusterAdmin([]string{bootstrap}, cfg)
	must(err, "NewClusterAdmin")
	must(ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false), "ClusterAdmin.CreateTopic")
	waitUntil("sarama sees topic", func() bool {
		md, err := ca.DescribeTopics([]string{topic})
		return err == nil && len(md) == 1 && errors.Is(md[0].Err, sarama.ErrNoError) && len(md[0].Partitions) == 1 && md[0].Partitions[0].Leader == 1
	})
	defer ca.Close()

	prod, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
	must(err, "NewSyncProducer")
	base := time.UnixMilli(baseMs)
	const n = 500
	type sent struct {
		key, value string
		headers    []sarama.RecordHeader
		ts         time.Time
	}
	var ss []sent
	for i := 0; i < n; i++ {
		s := sent{key: "sk" + strconv.Itoa(i), value: "sarama-" + strconv.Itoa(i),
			headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(i))}}, ts: base.Add(time.Duration(i) * time.Second)}
		msg := &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(s.key), Value: sarama.StringEncoder(s.value), Headers: s.headers, Timestamp: s.ts}
		part, off, err := prod.SendMessage(msg)
		must(err, "SendMessage")
		eq(part, int32(0), "partition")
		eq(off, int64(i), "offset of message "+strconv.Itoa(i))
		ss = append(ss, s)
	}
	// a batch through SendMessages
	var batch []*sarama.ProducerMessage
	for i := n; i < n+100; i++ {
		s := sent{key: "sk" + strconv.Itoa(i), value: "sarama-" + strconv.Itoa(i), headers: []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(strconv.Itoa(i))}}, ts: base.Add(time.Duration(i) * time.Second)}
		ss = append(ss, s)
		batch = append(batch, &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(s.key), Value: sarama.StringEncoder(s.value), Headers: s.headers, Timestamp: s.ts})
	}
	must(prod.SendMessages(batch), "SendMessages")
	must(prod.Close(), "SyncProducer.Close")

	cons, err := sarama.NewConsumer([]string{bootstrap}, cfg)
	must(err, "NewConsumer")
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	must(err, "ConsumePartition")
	deadline := time.After(60 * time.Second)
	for i := 0; i < len(ss); i++ {
		select {
		case m := <-pc.Messages():
			w := ss[i]
			eq(m.Offset, int64(i), "consumed offset")
			eq(string(m.Key), w.key, fmt.Sprintf("key at %d", i))
			eq(string(m.Value), w.value, fmt.Sprintf("value at %d", i))
			eq(m.Timestamp.UnixMilli(), w.ts.UnixMilli(), fmt.Sprintf("timestamp at %d", i))
			eq(len(m.Headers), 1, fmt.Sprintf("headers at %d", i))
			eq(string(m.Headers[0].Key)+"="+string(m.Headers[0].Value), "n="+strconv.Itoa(i), fmt.Sprintf("header at %d", i))
		case e := <-pc.Errors():
			fail("consumer error: %v", e)
		case <-deadline:
			fail("consumed only %d of %d messages before the deadline", i, len(ss))
		}
	}
	must(pc.Close(), "PartitionConsumer.Close")

	// start from an absolute offset
	pc2, err := cons.ConsumePartition(topic, 0, 321)
	must(err, "ConsumePartition(321)")
	select {
	case m := <-pc2.Messages():
		eq(m.Offset, int64(321), "offset from 321")
		eq(string(m.Value), "sarama-321", "value from 321")
	case e := <-pc2.Errors():
		fail("consumer error: %v", e)
	case <-time.After(30 * time.Second):
		fail("no message from offset 321")
	}
	must(pc2.Close(), "PartitionConsumer.Close")

	hw, err := sarama.NewClient([]string{bootstrap}, cfg)
	must(err, "NewClient")
	defer hw.Close()
	newest, err := hw.GetOffset(topic, 0, sarama.OffsetNewest)
	must(err, "GetOffset newest")
	eq(newest, int64(len(ss)), "newest offset")
	oldest, err := hw.GetOffset(topic, 0, sarama.OffsetOldest)
	must(err, "GetOffset oldest")
	eq(oldest, int64(0), "oldest offset")
}

// saramaV3Codecs: sarama speaking newer (flexible) protocol versions, with every codec.
func saramaV3Codecs(bootstrap string) {
	codecs := map[string]sarama.CompressionCodec{
		"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
		"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
	}
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		cfg := sarama.NewConfig()
		cfg.Version = sarama.V3_6_0_0
		cfg.ClientID = "jet-compat-sarama-v3"
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Producer.Return.Successes = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.Compression = codecs[name]
		cfg.Producer.Flush.Messages = 50
		cfg.Consumer.Return.Errors = true
		topic := topicName("sarama3-" + name)
		ca, err := sarama.NewClusterAdmin([]string{bootstrap}, cfg)
		must(err, "NewClusterAdmin")
		must(ca.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false), "CreateTopic "+topic)
		waitUntil("sarama sees "+topic, func() bool {
			md, err := ca.DescribeTopics([]string{topic})
			return err == nil && len(md) == 1 && errors.Is(md[0].Err, sarama.ErrNoError) && len(md[0].Partitions) == 1 && md[0].Partitions[0].Leader == 1
		})
		prod, err := sarama.NewSyncProducer([]string{bootstrap}, cfg)
		must(err, "NewSyncProducer")
		const n = 400
		var batch []*sarama.ProducerMessage
		for i := 0; i < n; i++ {
			batch = append(batch, &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder("k" + strconv.Itoa(i)),
				Value: sarama.StringEncoder(name + "-" + strconv.Itoa(i) + strings.Repeat("s", i%70)), Timestamp: time.UnixMilli(baseMs + int64(i)),
				Headers: []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(strconv.Itoa(i))}}})
		}
		must(prod.SendMessages(batch), "SendMessages "+name)
		for i, m := range batch {
			eq(m.Offset, int64(i), name+": produced offset")
		}
		must(prod.Close(), "Close")
		cons, err := sarama.NewConsumer([]string{bootstrap}, cfg)
		must(err, "NewConsumer")
		pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
		must(err, "ConsumePartition")
		deadline := time.After(60 * time.Second)
		for i := 0; i < n; i++ {
			select {
			case m := <-pc.Messages():
				eq(m.Offset, int64(i), name+": offset")
				eq(string(m.Key), "k"+strconv.Itoa(i), name+": key")
				eq(string(m.Value), name+"-"+strconv.Itoa(i)+strings.Repeat("s", i%70), name+": value")
				eq(m.Timestamp.UnixMilli(), baseMs+int64(i), name+": timestamp")
				eq(len(m.Headers), 1, name+": headers")
				eq(string(m.Headers[0].Value), strconv.Itoa(i), name+": header value")
			case e := <-pc.Errors():
				fail("%s: consumer error: %v", name, e)
			case <-deadline:
				fail("%s: consumed only %d of %d before the deadline", name, i, n)
			}
		}
		must(pc.Close(), "PartitionConsumer.Close")
		must(cons.Close(), "Consumer.Close")
		must(ca.Close(), "ClusterAdmin.Close")
	}
}
