package main

// Consumer-group scenarios: franz-go group consumers (range, cooperative-sticky, static
// membership, members of overlapping groups rebalancing at once) and a sarama ConsumerGroup.

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const groupPartitions = 6

// idSet collects consumed values from several goroutines.
type idSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func newIDSet() *idSet { return &idSet{m: map[string]bool{}} }

func (s *idSet) add(v string) {
	s.mu.Lock()
	s.m[v] = true
	s.mu.Unlock()
}

func (s *idSet) hasAll(want map[string]bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for v := range want {
		if !s.m[v] {
			return false
		}
	}
	return true
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// produceIDs produces values from..to-1, value i to partition i % groupPartitions.
func produceIDs(bootstrap, topic string, from, to int) map[string]bool {
	cl := kclient(bootstrap, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	values := map[string]bool{}
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		v := strconv.Itoa(i)
		values[v] = true
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % groupPartitions), Value: []byte(v)})
	}
	must(cl.ProduceSync(ctx, recs...).FirstErr(), "ProduceSync")
	return values
}

// groupMember is one franz-go group consumer polling on its own goroutine (autocommit every 500 ms).
type groupMember struct {
	cl   *kgo.Client
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func startMember(bootstrap, group, topic string, out *idSet, opts ...kgo.Opt) *groupMember {
	base := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6 * time.Second), kgo.HeartbeatInterval(500 * time.Millisecond),
		kgo.AutoCommitInterval(500 * time.Millisecond),
	}
	m := &groupMember{cl: kclient(bootstrap, append(base, opts...)...), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			fs := m.cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				m.mu.Lock()
				m.err = fmt.Errorf("fetch %s[%d]: %w", t, p, err)
				m.mu.Unlock()
			})
			fs.EachRecord(func(r *kgo.Record) { out.add(string(r.Value)) })
		}
	}()
	return m
}

func (m *groupMember) check() {
	m.mu.Lock()
	defer m.mu.Unlock()
	must(m.err, "group member")
}

// stop commits what was polled, then closes (a dynamic member leaves the group; a static one does not).
func (m *groupMember) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(m.cl.CommitUncommittedOffsets(ctx), "CommitUncommittedOffsets")
	m.cl.Close()
	<-m.done
	m.check()
}

type assignment map[string][]int32 // member id -> sorted partitions

// waitSplit waits until the group is Stable with n members, each owning partitions, all of them once.
func waitSplit(adm *kadm.Client, group string, n int, members ...*groupMember) (kadm.DescribedGroup, assignment) {
	var d kadm.DescribedGroup
	var a assignment
	waitUntil(fmt.Sprintf("%d members splitting %d partitions in %s", n, groupPartitions, group), func() bool {
		for _, m := range members {
			m.check()
		}
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err != nil || gs[group].Err != nil {
			return false
		}
		d, a = gs[group], assignment{}
		if d.State != "Stable" || len(d.Members) != n {
			return false
		}
		seen := map[int32]bool{}
		for _, m := range d.Members {
			c, ok := m.Assigned.AsConsumer()
			if !ok || len(c.Topics) != 1 || len(c.Topics[0].Partitions) == 0 {
				return false
			}
			ps := append([]int32(nil), c.Topics[0].Partitions...)
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			a[m.MemberID] = ps
			for _, p := range ps {
				if seen[p] {
					return false
				}
				seen[p] = true
			}
		}
		return len(seen) == groupPartitions
	})
	return d, a
}

func waitConsumed(out *idSet, produced map[string]bool, members ...*groupMember) {
	waitUntil("every record consumed", func() bool {
		for _, m := range members {
			m.check()
		}
		return out.hasAll(produced)
	})
}

func waitCommitsAtEnd(adm *kadm.Client, group, topic string) {
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(err, "ListEndOffsets")
	waitUntil("commits of "+group+" at the end offsets", func() bool {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p := int32(0); p < groupPartitions; p++ {
			e, _ := ends.Lookup(topic, p)
			o, ok := offs.Lookup(topic, p)
			if !ok || o.Err != nil || o.At != e.Offset {
				return false
			}
		}
		return true
	})
}

func newGroupTopic(adm *kadm.Client, prefix string) (topic, group string) {
	topic = topicName(prefix)
	kadmCreate(context.Background(), adm, topic, groupPartitions, nil)
	return topic, topicName(prefix + "-g")
}

// ------------------------------------------------------------------ scenarios

func franzGroupRange(bootstrap string) {
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic, group := newGroupTopic(adm, "franz-range")
	out := newIDSet()
	bal := kgo.Balancers(kgo.RangeBalancer())
	m1, m2 := startMember(bootstrap, group, topic, out, bal), startMember(bootstrap, group, topic, out, bal)
	d, a := waitSplit(adm, group, 2, m1, m2)
	eq(d.Protocol, "range", "group protocol")
	for id, ps := range a {
		eq(ps[len(ps)-1]-ps[0]+1, int32(3), fmt.Sprintf("range assignment of %s is 3 contiguous partitions: %v", id, ps))
	}
	produced := produceIDs(bootstrap, topic, 0, 3000)
	waitConsumed(out, produced, m1, m2)
	m1.stop()
	m2.stop()
	waitCommitsAtEnd(adm, group, topic)
}

// revokeLog records what the cooperative balancer revoked from one member.
type revokeLog struct {
	mu      sync.Mutex
	revoked map[int32]bool
}

func (r *revokeLog) take() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int32
	for p := range r.revoked {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	r.revoked = map[int32]bool{}
	return out
}

func minus(a, b []int32) []int32 {
	in := map[int32]bool{}
	for _, p := range b {
		in[p] = true
	}
	var out []int32
	for _, p := range a {
		if !in[p] {
			out = append(out, p)
		}
	}
	return out
}

func franzGroupCooperative(bootstrap string) {
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic, group := newGroupTopic(adm, "franz-coop")
	out := newIDSet()
	produced := produceIDs(bootstrap, topic, 0, 1200)
	var members []*groupMember
	var logs []*revokeLog
	join := func() {
		l := &revokeLog{revoked: map[int32]bool{}}
		onRevoked := kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, rev map[string][]int32) {
			must(cl.CommitUncommittedOffsets(ctx), "commit on revoke") // what the default revoke callback does
			l.mu.Lock()
			for _, p := range rev[topic] {
				l.revoked[p] = true
			}
			l.mu.Unlock()
		})
		members = append(members, startMember(bootstrap, group, topic, out, kgo.Balancers(kgo.CooperativeStickyBalancer()), onRevoked))
		logs = append(logs, l)
	}
	var before assignment
	for n := 1; n <= 3; n++ {
		join()
		d, a := waitSplit(adm, group, n, members...)
		eq(d.Protocol, "cooperative-sticky", "group protocol")
		// incremental: earlier members lost only what moved to the newcomer, and kept the rest
		for i, m := range members[:n-1] {
			id, _ := m.cl.GroupMetadata()
			lost := minus(before[id], a[id])
			eq(fmt.Sprint(logs[i].take()), fmt.Sprint(lost), fmt.Sprintf("member %d revoked exactly what it lost", i))
			eq(len(minus(a[id], before[id])), 0, fmt.Sprintf("member %d gained nothing when another joined", i))
			eq(len(a[id]) > 0, true, fmt.Sprintf("member %d keeps partitions", i))
		}
		before = a
	}
	waitConsumed(out, produced, members...)
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i], _ = m.cl.GroupMetadata()
	}
	members[0].stop()
	_, a := waitSplit(adm, group, 2, members[1:]...)
	for i := 1; i < 3; i++ { // sticky: survivors keep what they had, revoke nothing
		eq(len(minus(before[ids[i]], a[ids[i]])), 0, fmt.Sprintf("member %d kept its partitions", i))
		eq(len(logs[i].take()), 0, fmt.Sprintf("member %d revoked nothing when member 0 left", i))
	}
	more := produceIDs(bootstrap, topic, 1200, 1800)
	waitConsumed(out, more, members[1:]...)
	members[1].stop()
	members[2].stop()
	waitCommitsAtEnd(adm, group, topic)
}

func franzGroupStatic(bootstrap string) {
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic, group := newGroupTopic(adm, "franz-static")
	out := newIDSet()
	start := func(instance string) *groupMember {
		return startMember(bootstrap, group, topic, out, kgo.InstanceID(instance))
	}
	// b joins first and so leads; the member restarted below (a) is a follower. A
	// restarted static *leader* may legitimately force a rebalance: franz-go recomputes
	// the plan from the members' current metadata (KIP-814's limitation, see its
	// joinAndSync) and rejoins when it differs from the sticky history.
	b := start("static-b")
	waitUntil("the first static member to join", func() bool { _, gen := b.cl.GroupMetadata(); return gen >= 0 })
	a := start("static-a")
	d, before := waitSplit(adm, group, 2, a, b)
	_, genB := b.cl.GroupMetadata()
	byInstance := func(d kadm.DescribedGroup, as assignment) map[string]string {
		m := map[string]string{}
		for _, mem := range d.Members {
			m[*mem.InstanceID] = fmt.Sprint(as[mem.MemberID])
		}
		return m
	}
	assigned := byInstance(d, before)
	first := produceIDs(bootstrap, topic, 0, 1500)
	waitConsumed(out, first, a, b)

	// a static member closes without leaving, then comes back within the session timeout
	oldID, genA := a.cl.GroupMetadata()
	a.stop()
	a = start("static-a")
	waitUntil("the restarted static member to join", func() bool { _, gen := a.cl.GroupMetadata(); return gen >= 0 })
	newID, genA2 := a.cl.GroupMetadata()
	if newID == oldID {
		fail("static member kept its member id %s across a restart (expected a new one)", oldID)
	}
	d, after := waitSplit(adm, group, 2, a, b)
	if _, ok := after[newID]; !ok {
		fail("the group's members %v do not include the restarted member %s", after, newID)
	}
	eq(genA2, genA, "generation after the static member's restart (no rebalance)")
	_, genB2 := b.cl.GroupMetadata()
	eq(genB2, genB, "generation of the other member")
	eq(fmt.Sprint(byInstance(d, after)), fmt.Sprint(assigned), "assignments by instance id")

	second := produceIDs(bootstrap, topic, 1500, 3000)
	waitConsumed(out, second, a, b)
	a.stop()
	b.stop()
	waitCommitsAtEnd(adm, group, topic)
}

// franzGroupChained: member i consumes in groups g[i] and g[i+1 mod 3] (one client per group);
// all six clients start at once, then member 0 leaves, so g0 and g1 rebalance together.
func franzGroupChained(bootstrap string) {
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic, base := newGroupTopic(adm, "franz-chain")
	groups := []string{base + "-0", base + "-1", base + "-2"}
	outs := []*idSet{newIDSet(), newIDSet(), newIDSet()}
	clients := make([][2]*groupMember, 3) // clients[i] = member i's two clients
	byGroup := make([][]*groupMember, 3)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		for k := 0; k < 2; k++ {
			wg.Add(1)
			go func(i, k int) {
				defer wg.Done()
				clients[i][k] = startMember(bootstrap, groups[(i+k)%3], topic, outs[(i+k)%3])
			}(i, k)
		}
	}
	wg.Wait()
	for i := 0; i < 3; i++ {
		for k := 0; k < 2; k++ {
			g := (i + k) % 3
			byGroup[g] = append(byGroup[g], clients[i][k])
		}
	}
	for g := range groups {
		waitSplit(adm, groups[g], 2, byGroup[g]...)
	}
	produced := produceIDs(bootstrap, topic, 0, 3000)
	for g := range groups {
		waitConsumed(outs[g], produced, byGroup[g]...)
	}
	var leaving sync.WaitGroup
	for k := 0; k < 2; k++ {
		leaving.Add(1)
		go func(k int) { defer leaving.Done(); clients[0][k].stop() }(k)
	}
	leaving.Wait()
	more := produceIDs(bootstrap, topic, 3000, 4500)
	for g := range groups {
		var alive []*groupMember
		for _, m := range byGroup[g] {
			if m != clients[0][0] && m != clients[0][1] {
				alive = append(alive, m)
			}
		}
		waitSplit(adm, groups[g], len(alive), alive...)
		waitConsumed(outs[g], more, alive...)
	}
	for i := 1; i < 3; i++ {
		for k := 0; k < 2; k++ {
			clients[i][k].stop()
		}
	}
	for g := range groups {
		waitCommitsAtEnd(adm, groups[g], topic)
	}
}

// saramaHandler marks every message and commits after each drained batch.
type saramaHandler struct{ out *idSet }

func (saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.out.add(string(msg.Value))
		s.MarkMessage(msg, "")
		if len(claim.Messages()) == 0 {
			s.Commit()
		}
	}
	return nil
}

func saramaGroup(bootstrap string) {
	adm := kadm.NewClient(kclient(bootstrap))
	defer adm.Close()
	topic, group := newGroupTopic(adm, "sarama-group")
	cfg := sarama.NewConfig()
	cfg.ClientID = "jet-compat-sarama-group"
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	out := newIDSet()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	var cgs []sarama.ConsumerGroup
	for i := 0; i < 2; i++ {
		cg, err := sarama.NewConsumerGroup([]string{bootstrap}, group, cfg)
		must(err, "NewConsumerGroup")
		cgs = append(cgs, cg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, saramaHandler{out}); err != nil && ctx.Err() == nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			for err := range cg.Errors() {
				errs <- err
			}
		}()
	}
	noErrors := func() bool {
		select {
		case err := <-errs:
			fail("sarama consumer group: %v", err)
		default:
		}
		return true
	}
	waitUntil("two sarama members splitting the topic", func() bool {
		gs, err := adm.DescribeGroups(context.Background(), group)
		d := gs[group]
		return noErrors() && err == nil && d.State == "Stable" && len(d.Members) == 2 && len(d.AssignedPartitions()[topic]) == groupPartitions
	})
	produced := produceIDs(bootstrap, topic, 0, 3000)
	waitUntil("every record consumed", func() bool { return noErrors() && out.hasAll(produced) })
	waitCommitsAtEnd(adm, group, topic)
	cancel()
	wg.Wait()
	for _, cg := range cgs {
		must(cg.Close(), "ConsumerGroup.Close")
	}
	noErrors()
	eq(out.len(), len(produced), "distinct values consumed")
}
