package main

// franz-cluster-failover: franz-go on a 3-broker cluster across a SIGKILL of a partition
// leader, driven by compat-tests/test_cluster_go.py.
//
//	jetcompat-go BOOTSTRAP franz-cluster-failover TOPIC GROUP OUTFILE
//
// kadm creates TOPIC (3 partitions, replication factor 3). The default franz-go producer
// (idempotent, acks=all) writes "v<n>" to partition n%3 while a group consumer (GROUP)
// reads and autocommits. Stdout carries progress for the test:
//
//	ready                      the topic has a leader for every partition
//	acked N p0 p1 p2 consumed M commits C
//	                           N records acknowledged (p0..p2 per partition), M distinct
//	                           values read by the group, C successful autocommits
//	fetch-error TEXT           an error PollFetches returned (franz-go also injects errors
//	                           of its group management loop there); the test judges them
//	killed at N                the test's "killed" line read from stdin (N acknowledged then)
//	post-kill P S              the first record produced after "killed" that partition P
//	                           acknowledged, S seconds after "killed" was read
//
// After "killed" the producer goes on until 2000 more records are acknowledged and every
// partition has acknowledged a record produced after "killed", then stops and
// flushes (every record must be acknowledged, none may fail), waits until the group has
// read every acknowledged value, at the partition and offset the producer was told,
// commits, checks the group's committed offsets equal the end offsets, writes the
// acknowledged records as JSON [[value, partition, offset], ...] to OUTFILE and prints OK.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	clusterPartitions = 3
	ackedBeforeKill   = 2000 // the test kills once this many are acknowledged
	ackedAfterKill    = 2000 // then the producer stops once this many more are
)

type placed struct {
	partition int32
	offset    int64
}

func stamp() string { return time.Now().UTC().Format("15:04:05.000") }

func franzClusterFailover(bootstrap string) {
	if len(scenarioArgs) != 3 {
		fail("franz-cluster-failover needs TOPIC GROUP OUTFILE, got %q", scenarioArgs)
	}
	topic, group, outFile := scenarioArgs[0], scenarioArgs[1], scenarioArgs[2]
	level := kgo.LogLevelInfo // franz-go's log goes to stderr; JET_GO_LOG=debug for every request
	if os.Getenv("JET_GO_LOG") == "debug" {
		level = kgo.LogLevelDebug
	}
	logger := kgo.BasicLogger(os.Stderr, level, func() string { return stamp() + " " })
	ctx := context.Background()

	adm := kadm.NewClient(kclient(bootstrap, kgo.WithLogger(logger)))
	defer adm.Close()
	resp, err := adm.CreateTopics(ctx, clusterPartitions, 3, nil, topic)
	must(err, "kadm.CreateTopics")
	r, err := resp.On(topic, nil)
	must(err, "CreateTopics.On")
	must(r.Err, "create topic "+topic)
	waitUntil("a leader and 3 replicas for every partition of "+topic, func() bool {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil || len(td.Partitions) != clusterPartitions {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 || len(p.Replicas) != 3 {
				return false
			}
		}
		return true
	})
	fmt.Println("ready")

	// ---- group consumer: value -> every (partition, offset) it was read at
	var cmu sync.Mutex
	consumed := map[string][]placed{}
	var commits atomic.Int64
	cons := kclient(bootstrap,
		kgo.WithLogger(logger),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.AutoCommitInterval(200*time.Millisecond),
		kgo.AutoCommitCallback(func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s autocommit failed: %v\n", stamp(), err)
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
						fmt.Fprintf(os.Stderr, "%s autocommit %s[%d]: %v\n", stamp(), t.Topic, p.Partition, e)
						return
					}
				}
			}
			commits.Add(1)
		}),
	)
	consDone := make(chan struct{})
	go func() {
		defer close(consDone)
		for {
			fs := cons.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			cmu.Lock()
			fs.EachError(func(t string, p int32, err error) {
				fmt.Printf("fetch-error %s %s[%d]: %v\n", stamp(), t, p, err)
				fmt.Fprintf(os.Stderr, "%s consumer fetch error %s[%d]: %v\n", stamp(), t, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) {
				v := string(r.Value)
				consumed[v] = append(consumed[v], placed{r.Partition, r.Offset})
			})
			cmu.Unlock()
		}
	}()

	// ---- producer: franz-go's defaults (idempotent, acks=all), about 1000 records a second
	prod := kclient(bootstrap, kgo.WithLogger(logger), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(2000))
	var (
		pmu       sync.Mutex
		acked     = map[string]placed{}
		perPart   [clusterPartitions]int
		prodErrs  []string
		killSeq   atomic.Int64 // first sequence number produced after "killed"; 0 until then
		killedAt  time.Time
		postKill  [clusterPartitions]bool
		afterKill = -1 // acknowledged count when "killed" was read
	)
	killSeq.Store(-1)
	killed := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "killed" {
				pmu.Lock()
				killedAt, afterKill = time.Now(), len(acked)
				pmu.Unlock()
				close(killed)
				return
			}
		}
	}()

	var produced sync.WaitGroup
	reportDone, reported := make(chan struct{}), make(chan struct{})
	go func() { // progress lines for the test, only when something changed; a last one at reportDone
		defer close(reported)
		last := int64(-1)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for final := false; !final; {
			select {
			case <-reportDone:
				final = true
			case <-tick.C:
			}
			pmu.Lock()
			n, pp := len(acked), perPart
			pmu.Unlock()
			cmu.Lock()
			m := len(consumed)
			cmu.Unlock()
			c := commits.Load()
			if sum := int64(n) + int64(m) + c; sum != last {
				fmt.Printf("acked %d %d %d %d consumed %d commits %d\n", n, pp[0], pp[1], pp[2], m, c)
				last = sum
			}
		}
	}()

	pace := time.NewTicker(time.Millisecond)
	var seq int64
	var target = -1
	deadline := time.Now().Add(300 * time.Second)
	for {
		select {
		case <-killed:
			if target < 0 {
				pmu.Lock()
				target = afterKill + ackedAfterKill
				fmt.Printf("killed at %d\n", afterKill)
				pmu.Unlock()
				killSeq.Store(seq)
			}
		default:
		}
		if target >= 0 {
			pmu.Lock()
			done := len(acked) >= target && postKill == [clusterPartitions]bool{true, true, true}
			pmu.Unlock()
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			pmu.Lock()
			n, pk := len(acked), postKill
			pmu.Unlock()
			fail("producer: %d acknowledged after 300 s (target %d; the test kills at %d); post-kill acknowledgement per partition: %v", n, target, ackedBeforeKill, pk)
		}
		<-pace.C
		n := seq
		seq++
		v := fmt.Sprintf("v%d", n)
		produced.Add(1)
		prod.Produce(ctx, &kgo.Record{Value: []byte(v), Partition: int32(n % clusterPartitions)}, func(r *kgo.Record, err error) {
			defer produced.Done()
			pmu.Lock()
			defer pmu.Unlock()
			if err != nil {
				prodErrs = append(prodErrs, fmt.Sprintf("%s %s -> partition %d: %v", stamp(), v, r.Partition, err))
				return
			}
			acked[v] = placed{r.Partition, r.Offset}
			perPart[r.Partition]++
			if ks := killSeq.Load(); ks >= 0 && n >= ks && !postKill[r.Partition] {
				postKill[r.Partition] = true
				fmt.Printf("post-kill %d %.3f\n", r.Partition, time.Since(killedAt).Seconds())
			}
		})
	}
	pace.Stop()
	fctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	must(prod.Flush(fctx), "producer Flush (records still unacknowledged 120 s after the stop)")
	cancel()
	produced.Wait()
	prod.Close()
	close(reportDone)
	<-reported
	pmu.Lock()
	fmt.Printf("produced %d\n", seq)
	if len(prodErrs) > 0 {
		pmu.Unlock()
		fail("%d produce errors, e.g. %q", len(prodErrs), prodErrs[:min(5, len(prodErrs))])
	}
	if int64(len(acked)) != seq {
		pmu.Unlock()
		fail("%d records produced, %d acknowledged", seq, len(acked))
	}
	for p := range postKill {
		if !postKill[p] {
			fmt.Fprintf(os.Stderr, "no record produced after the kill was acknowledged on partition %d\n", p)
		}
	}
	pmu.Unlock()

	// ---- the group reads every acknowledged value, where the producer was told it is
	state := func() (missing, misplaced int, example string) {
		cmu.Lock()
		defer cmu.Unlock()
		for v, at := range acked {
			got := consumed[v]
			if len(got) == 0 {
				missing++
				if example == "" {
					example = fmt.Sprintf("%s (acknowledged at %d/%d) never read", v, at.partition, at.offset)
				}
				continue
			}
			for _, g := range got {
				if g != at {
					misplaced++
					example = fmt.Sprintf("%s acknowledged at %d/%d, read at %d/%d", v, at.partition, at.offset, g.partition, g.offset)
				}
			}
		}
		return
	}
	readEnd := time.Now().Add(120 * time.Second)
	for {
		missing, misplaced, example := state()
		if misplaced > 0 {
			fail("group read %d values at another partition/offset than acknowledged, e.g. %s", misplaced, example)
		}
		if missing == 0 {
			break
		}
		if time.Now().After(readEnd) {
			fail("the group had not read %d of %d acknowledged values 120 s after the producer stopped, e.g. %s", missing, len(acked), example)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	cmu.Lock()
	extra := 0
	for _, got := range consumed {
		extra += len(got) - 1
	}
	if len(consumed) != len(acked) {
		cmu.Unlock()
		fail("group read %d distinct values, %d were acknowledged", len(consumed), len(acked))
	}
	cmu.Unlock()
	fmt.Printf("group read all %d acknowledged values (%d read again)\n", len(acked), extra)

	// ---- the group's commits reach the end of every partition
	cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
	must(cons.CommitUncommittedOffsets(cctx), "CommitUncommittedOffsets")
	ccancel()
	var last string
	commitEnd := time.Now().Add(60 * time.Second)
	for {
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		offs, err2 := adm.FetchOffsets(ctx, group)
		if err1 == nil && err2 == nil && offs.Error() == nil {
			same := true
			last = ""
			for p := int32(0); p < clusterPartitions; p++ {
				e, _ := ends.Lookup(topic, p)
				o, ok := offs.Lookup(topic, p)
				last += fmt.Sprintf(" p%d end %d committed %d(%v);", p, e.Offset, o.At, ok)
				if e.Err != nil || !ok || o.Err != nil || o.At != e.Offset {
					same = false
				}
			}
			if same {
				break
			}
		} else {
			last = fmt.Sprintf("ListEndOffsets %v, FetchOffsets %v / %v", err1, err2, offs.Error())
		}
		if time.Now().After(commitEnd) {
			fail("group %s commits did not reach the end offsets within 60 s:%s", group, last)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	fmt.Printf("committed at the end offsets:%s\n", last)
	cons.Close()
	<-consDone

	out := make([][3]any, 0, len(acked))
	for v, at := range acked {
		out = append(out, [3]any{v, at.partition, at.offset})
	}
	b, err := json.Marshal(out)
	must(err, "json")
	must(os.WriteFile(outFile, b, 0o644), "write "+outFile)
}
