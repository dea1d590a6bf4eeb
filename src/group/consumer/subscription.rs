//! What the group subscribes to (topic names and regular expressions resolved against the
//! broker's topics), the group epoch bumps it causes, and the target assignment.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use uuid::Uuid;

use super::assignor::{self, MemberSpec};
use super::heartbeat::Context;
use super::member::{Assignment, Member};
use super::{ConsumerGroup, ResolvedRegex, TopicsSnapshot};
use crate::group::records::KeyValue;

/// Largest compiled regular expression accepted (bytes of the automaton).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a subscription regex (RE2 syntax, matched against whole topic names).
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$")).size_limit(REGEX_SIZE_LIMIT).build()
}

fn resolve_regex(pattern: &str, ctx: &Context<'_>) -> ResolvedRegex {
    let topics = match compile_regex(pattern) {
        Ok(re) => {
            // Every topic name the regex matches, internal ones included: Kafka 4.1's
            // `GroupMetadataManager.refreshRegularExpressions` filters only by ACLs.
            ctx.topics.names().filter(|t| re.is_match(t)).map(String::from).collect()
        }
        Err(_) => BTreeSet::new(),
    };
    ResolvedRegex { topics, version: ctx.topics.version, timestamp_ms: ctx.now_ms }
}

/// FNV-1a over the subscribed topics' names, ids and partition counts (Jet's stand-in for
/// Kafka's KIP-1101 metadata hash: only ever compared with itself).
fn metadata_hash(topics: &BTreeMap<&str, (Uuid, i32)>) -> i64 {
    if topics.is_empty() {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, (id, partitions)) in topics {
        feed(name.as_bytes());
        feed(&[0]);
        feed(id.as_bytes());
        feed(&partitions.to_be_bytes());
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

impl ConsumerGroup {
    /// Resolves the regexes members use and deletes the unused ones; with `all`, re-resolves
    /// every one, else only new ones and those resolved at another topics version. Returns
    /// whether some resolution changed.
    pub(super) fn refresh_regexes(&mut self, ctx: &Context<'_>, all: bool, records: &mut Vec<KeyValue>) -> bool {
        let used: BTreeSet<String> = self.members.values().filter_map(|m| m.subscribed_topic_regex.clone()).collect();
        let unused: Vec<String> = self.regexes.keys().filter(|r| !used.contains(*r)).cloned().collect();
        let mut changed = false;
        for regex in unused {
            self.regexes.remove(&regex);
            records.push(self.regex_record(&regex, None));
        }
        for regex in used {
            let stale = match self.regexes.get(&regex) {
                Some(resolved) => all || resolved.version != ctx.topics.version,
                None => true,
            };
            if !stale {
                continue;
            }
            let resolved = resolve_regex(&regex, ctx);
            let previous = self.regexes.get(&regex);
            if previous.is_some_and(|p| p.topics == resolved.topics && p.version == resolved.version) {
                continue;
            }
            changed |= previous.map(|p| &p.topics) != Some(&resolved.topics);
            records.push(self.regex_record(&regex, Some(&resolved)));
            self.regexes.insert(regex, resolved);
        }
        changed
    }

    /// Topics some member subscribes to (by name or regex) that exist.
    pub(super) fn subscribed_topics<'t>(&self, topics: &'t TopicsSnapshot) -> BTreeMap<&'t str, (Uuid, i32)> {
        let mut subscribed = BTreeMap::new();
        for member in self.members.values() {
            for name in self.member_topic_names(member) {
                if let Some((key, value)) = topics.by_name.get_key_value(name) {
                    subscribed.insert(key.as_str(), *value);
                }
            }
        }
        subscribed
    }

    pub(super) fn member_topic_names<'m>(&'m self, member: &'m Member) -> impl Iterator<Item = &'m String> {
        let regex = member.subscribed_topic_regex.as_ref().and_then(|r| self.regexes.get(r));
        member.subscribed_topic_names.iter().chain(regex.into_iter().flat_map(|r| r.topics.iter()))
    }

    /// Bumps the group epoch if `changed` or the subscribed topics' metadata changed, then
    /// computes the new target assignment.
    pub(super) fn maybe_bump_group_epoch(&mut self, changed: bool, ctx: &Context<'_>, records: &mut Vec<KeyValue>) {
        let hash = metadata_hash(&self.subscribed_topics(ctx.topics));
        if changed || hash != self.metadata_hash {
            self.group_epoch += 1;
            self.metadata_hash = hash;
            records.push(self.group_metadata_record());
        }
        if self.group_epoch > self.assignment_epoch {
            self.update_target_assignment(ctx, records);
        }
    }

    /// Kafka's `TargetAssignmentBuilder`: runs the assignor and persists the members whose
    /// target changed, then the new assignment epoch.
    pub(super) fn update_target_assignment(&mut self, ctx: &Context<'_>, records: &mut Vec<KeyValue>) {
        let assignor = self.preferred_assignor(ctx.cfg);
        let subscribed = self.subscribed_topics(ctx.topics);
        let partitions: BTreeMap<Uuid, i32> = subscribed.values().copied().collect();
        let empty = Assignment::new();
        let specs: BTreeMap<&str, MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| {
                let topics =
                    self.member_topic_names(m).filter_map(|n| subscribed.get(n.as_str()).map(|(id, _)| *id)).collect();
                let previous = self.target.get(&m.member_id).unwrap_or(&empty);
                (m.member_id.as_str(), MemberSpec { instance_id: m.instance_id.as_deref(), topics, previous })
            })
            .collect();
        let new_target = assignor::assign(&assignor, &specs, &partitions);
        for (member_id, assignment) in &new_target {
            if self.target.get(member_id) != Some(assignment) {
                records.push(self.target_member_record(member_id, assignment));
            }
        }
        self.target = new_target;
        self.assignment_epoch = self.group_epoch;
        records.push(self.target_metadata_record());
    }

    /// Partitions assigned to or being revoked by members other than `member_id`.
    pub(super) fn owned_partitions_except(&self, member_id: &str) -> HashSet<(Uuid, i32)> {
        let mut owned = HashSet::new();
        for m in self.members.values().filter(|m| m.member_id != member_id) {
            for (topic, partitions) in m.assigned.iter().chain(&m.pending_revocation) {
                owned.extend(partitions.iter().map(|p| (*topic, *p)));
            }
        }
        owned
    }
}
