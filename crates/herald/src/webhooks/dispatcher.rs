//! The webhook dispatcher, one task: holds `channel_vacated` and `member_removed` back for a few
//! seconds (a page reload — leave, come back — then tells nothing at all), gathers what falls
//! due together into one batch, and hands each app's webhooks their part of it.

use super::delivery::Sender;
use super::{LEAVE_DELAY, Noted, WebhookApp, WebhookEvent};
use crate::metrics::metrics;
use crate::presence::LeaveMarks;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Changes that fall due within this window go out in one request.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Changes held (delayed or due) at most; beyond, new ones are dropped and counted.
const MAX_WAITING: usize = 100_000;

/// Runs until every [`super::Webhooks`] handle is gone.
/// `marks`: the shared store's leave marks, when a come-back may happen on another node.
pub(super) async fn run(
    mut queue: mpsc::Receiver<Noted>,
    apps: Vec<WebhookApp>,
    sender: Sender,
    marks: Option<Arc<dyn LeaveMarks>>,
) {
    let apps: Arc<[WebhookApp]> = apps.into();
    let mut waiting = Waiting::default();
    loop {
        let wake = waiting.next_wake();
        let noted = tokio::select! {
            noted = queue.recv() => match noted {
                Some(noted) => Some(noted),
                None => return,
            },
            () = sleep_until(wake) => None,
        };
        let now = Instant::now();
        if let Some(noted) = noted {
            waiting.take(noted, now);
        }
        waiting.release(now);
        if waiting.batch_is_ready(now) {
            let mut batch = waiting.take_batch();
            if let Some(marks) = &marks {
                batch = still_gone(marks.as_ref(), batch).await;
            }
            route(&apps, batch, &sender);
        }
    }
}

/// The batch without the removed members who came back meanwhile, on any node (their leave
/// mark is gone). A store that cannot answer keeps the removal: better told than lost.
async fn still_gone(marks: &dyn LeaveMarks, batch: Vec<Noted>) -> Vec<Noted> {
    let mut kept = Vec::with_capacity(batch.len());
    for noted in batch {
        if let WebhookEvent::MemberRemoved { user_id } = &noted.event {
            match marks.take(&noted.channel, user_id).await {
                Ok(false) => continue,
                Ok(true) => {}
                Err(e) => tracing::warn!(error = %e, "could not read a presence leave mark"),
            }
        }
        kept.push(noted);
    }
    kept
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the dispatcher holds: changes delayed in case they are undone, and changes due.
#[derive(Default)]
struct Waiting {
    /// Vacated channels, by Hub key, and when to tell.
    vacated: HashMap<String, Instant>,
    /// Removed members, by (Hub key, user id), and when to tell.
    removed: HashMap<(String, String), Instant>,
    /// Due, in order.
    due: Vec<Noted>,
    /// When the first of `due` fell due.
    batch_since: Option<Instant>,
}

impl Waiting {
    fn held(&self) -> usize {
        self.vacated.len() + self.removed.len() + self.due.len()
    }

    /// Takes one change: a leave waits; a come-back within the delay cancels both.
    fn take(&mut self, noted: Noted, now: Instant) {
        if self.held() >= MAX_WAITING {
            metrics().webhook_events_dropped.inc();
            return;
        }
        match &noted.event {
            // A cluster's vacancy has waited already, and nobody came back on any node.
            WebhookEvent::Vacated if noted.settled => self.make_due(noted, now),
            WebhookEvent::Vacated => {
                self.vacated.insert(noted.channel, now + LEAVE_DELAY);
            }
            WebhookEvent::MemberRemoved { user_id } => {
                let key = (noted.channel.clone(), user_id.clone());
                self.removed.insert(key, now + LEAVE_DELAY);
            }
            WebhookEvent::Occupied if self.vacated.remove(&noted.channel).is_some() => {}
            WebhookEvent::MemberAdded { user_id }
                if self
                    .removed
                    .remove(&(noted.channel.clone(), user_id.clone()))
                    .is_some() => {}
            // One cache_miss per channel per batch, however many subscribed (Pusher
            // de-duplicates them too).
            WebhookEvent::CacheMiss
                if self.due.iter().any(|due| {
                    due.event == WebhookEvent::CacheMiss && due.channel == noted.channel
                }) => {}
            _ => self.make_due(noted, now),
        }
    }

    /// Makes due the leaves whose delay is over: members first, then channels.
    fn release(&mut self, now: Instant) {
        let mut over = Vec::new();
        self.removed.retain(|(channel, user_id), at| {
            let keep = *at > now;
            if !keep {
                let event = WebhookEvent::MemberRemoved {
                    user_id: user_id.clone(),
                };
                over.push(Noted {
                    channel: channel.clone(),
                    event,
                    settled: true,
                });
            }
            keep
        });
        self.vacated.retain(|channel, at| {
            let keep = *at > now;
            if !keep {
                over.push(Noted {
                    channel: channel.clone(),
                    event: WebhookEvent::Vacated,
                    settled: true,
                });
            }
            keep
        });
        for noted in over {
            self.make_due(noted, now);
        }
    }

    fn make_due(&mut self, noted: Noted, now: Instant) {
        self.batch_since.get_or_insert(now);
        self.due.push(noted);
    }

    fn batch_is_ready(&self, now: Instant) -> bool {
        self.batch_since
            .is_some_and(|since| now >= since + BATCH_WINDOW)
    }

    fn take_batch(&mut self) -> Vec<Noted> {
        self.batch_since = None;
        std::mem::take(&mut self.due)
    }

    /// The next time something falls due.
    fn next_wake(&self) -> Option<Instant> {
        let batch = self.batch_since.map(|since| since + BATCH_WINDOW);
        let leaves = self
            .vacated
            .values()
            .chain(self.removed.values())
            .min()
            .copied();
        match (batch, leaves) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Hands each webhook the changes it wants, named as its app names the channel, as one batch.
fn route(apps: &Arc<[WebhookApp]>, batch: Vec<Noted>, sender: &Sender) {
    let mut per_target: HashMap<(usize, usize), Vec<Value>> = HashMap::new();
    for noted in &batch {
        for (a, app) in apps.iter().enumerate() {
            let Some(channel) = app.space.name_of(&noted.channel) else {
                continue;
            };
            for (t, target) in app.targets.iter().enumerate() {
                if target.wants(noted.event.kind(), channel) {
                    per_target
                        .entry((a, t))
                        .or_default()
                        .push(noted.event.to_json(channel));
                }
            }
        }
    }
    for ((app, target), events) in per_target {
        sender.send(apps.clone(), app, target, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noted(channel: &str, event: WebhookEvent) -> Noted {
        Noted {
            channel: channel.to_owned(),
            event,
            settled: false,
        }
    }

    fn due_events(waiting: &Waiting) -> Vec<(String, WebhookEvent)> {
        waiting
            .due
            .iter()
            .map(|n| (n.channel.clone(), n.event.clone()))
            .collect()
    }

    #[test]
    fn a_reload_tells_nothing_and_a_real_leave_is_told_after_the_delay() {
        let start = Instant::now();
        let mut waiting = Waiting::default();
        waiting.take(noted("c", WebhookEvent::Occupied), start);
        assert_eq!(
            due_events(&waiting),
            vec![("c".into(), WebhookEvent::Occupied)]
        );
        waiting.take_batch();
        // Reload: vacated, occupied again a second later.
        waiting.take(noted("c", WebhookEvent::Vacated), start);
        waiting.take(
            noted("c", WebhookEvent::Occupied),
            start + Duration::from_secs(1),
        );
        waiting.release(start + Duration::from_secs(5));
        assert!(due_events(&waiting).is_empty());
        assert_eq!(waiting.next_wake(), None);
        // A real leave.
        waiting.take(noted("c", WebhookEvent::Vacated), start);
        assert_eq!(waiting.next_wake(), Some(start + LEAVE_DELAY));
        waiting.release(start + Duration::from_secs(2));
        assert!(due_events(&waiting).is_empty());
        waiting.release(start + LEAVE_DELAY);
        assert_eq!(
            due_events(&waiting),
            vec![("c".into(), WebhookEvent::Vacated)]
        );
    }

    #[test]
    fn a_member_who_comes_back_is_neither_removed_nor_added() {
        let start = Instant::now();
        let mut waiting = Waiting::default();
        let user = |id: &str| id.to_owned();
        waiting.take(
            noted(
                "presence-r",
                WebhookEvent::MemberRemoved { user_id: user("1") },
            ),
            start,
        );
        waiting.take(
            noted(
                "presence-r",
                WebhookEvent::MemberAdded { user_id: user("1") },
            ),
            start,
        );
        waiting.take(
            noted(
                "presence-r",
                WebhookEvent::MemberAdded { user_id: user("2") },
            ),
            start,
        );
        waiting.release(start + LEAVE_DELAY);
        assert_eq!(
            due_events(&waiting),
            vec![(
                "presence-r".into(),
                WebhookEvent::MemberAdded { user_id: user("2") }
            )]
        );
    }

    #[test]
    fn changes_due_together_make_one_batch_after_the_window() {
        let start = Instant::now();
        let mut waiting = Waiting::default();
        waiting.take(noted("a", WebhookEvent::Occupied), start);
        waiting.take(
            noted("b", WebhookEvent::Occupied),
            start + Duration::from_millis(10),
        );
        assert!(!waiting.batch_is_ready(start + Duration::from_millis(40)));
        assert!(waiting.batch_is_ready(start + BATCH_WINDOW));
        assert_eq!(waiting.take_batch().len(), 2);
        assert!(!waiting.batch_is_ready(start + Duration::from_secs(1)));
    }
}
