//! The coordinator's deadline queue: each group's next deadline, ordered by time, so
//! the timer task sleeps exactly until the earliest one instead of polling.

use std::collections::{BTreeSet, HashMap};

#[derive(Default)]
pub struct DeadlineQueue {
    by_time: BTreeSet<(i64, String)>,
    by_group: HashMap<String, i64>,
}

impl DeadlineQueue {
    /// Sets (or with `None` clears) `group`'s deadline.
    pub fn set(&mut self, group: &str, deadline: Option<i64>) {
        if self.by_group.get(group).copied() == deadline {
            return;
        }
        if let Some(old) = self.by_group.remove(group) {
            self.by_time.remove(&(old, group.to_string()));
        }
        if let Some(at) = deadline {
            self.by_group.insert(group.to_string(), at);
            self.by_time.insert((at, group.to_string()));
        }
    }

    /// The earliest deadline.
    pub fn first(&self) -> Option<i64> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the groups whose deadline is at or before `now_ms`.
    pub fn pop_due(&mut self, now_ms: i64) -> Vec<String> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now_ms {
                break;
            }
            if let Some((_, group)) = self.by_time.pop_first() {
                self.by_group.remove(&group);
                due.push(group);
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_are_served_in_time_order_and_replaced() {
        let mut q = DeadlineQueue::default();
        q.set("a", Some(30));
        q.set("b", Some(10));
        q.set("c", Some(20));
        q.set("a", Some(5));
        q.set("c", None);
        assert_eq!(q.first(), Some(5));
        assert_eq!(q.pop_due(10), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(q.first(), None);
        assert!(q.pop_due(100).is_empty());
    }
}
