package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franzTransactions: a franz-go transactional producer commits, aborts and commits again;
// a read_committed consumer sees exactly the committed records, a read_uncommitted one
// the aborted ones too.
func franzTransactions(bootstrap string) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic := topicName("franz-txn")
	kadmCreate(ctx, adm, topic, 2, nil)
	cl := kclient(bootstrap, kgo.TransactionalID("franz-txn-"+topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	var committed []string
	txn := func(prefix string, n int, commit bool) {
		must(cl.BeginTransaction(), "BeginTransaction")
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d", prefix, i)
			must(cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(v)}).FirstErr(), "produce "+v)
			if commit {
				committed = append(committed, v)
			}
		}
		end := kgo.TryAbort
		if commit {
			end = kgo.TryCommit
		}
		must(cl.EndTransaction(ctx, end), "EndTransaction")
	}
	txn("first", 10, true)
	txn("aborted", 6, false)
	txn("second", 8, true)
	slices.Sort(committed)
	got := consumeBoth(bootstrap, topic, len(committed), kgo.ReadCommitted())
	eq(strings.Join(got, ","), strings.Join(committed, ","), "read_committed values")
	all := consumeBoth(bootstrap, topic, len(committed)+6, kgo.ReadUncommitted())
	aborted := 0
	for _, v := range all {
		if strings.HasPrefix(v, "aborted-") {
			aborted++
		}
	}
	eq(aborted, 6, "aborted records read_uncommitted")
}

// consumeBoth reads n values from partitions 0 and 1 of topic with the isolation level,
// then polls once more to see that nothing else arrives; sorted.
func consumeBoth(bootstrap, topic string, n int, level kgo.IsolationLevel) []string {
	start := map[int32]kgo.Offset{0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}
	cl := kclient(bootstrap, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}), kgo.FetchIsolationLevel(level))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []string
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consumed only %d of %d records from %s before the deadline", len(out), n, topic)
		}
		fs.EachError(func(t string, p int32, err error) { fail("fetch error %s[%d]: %v", t, p, err) })
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	more, cancelMore := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelMore()
	cl.PollFetches(more).EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	slices.Sort(out)
	return out
}
