//! What this replica wrote recently, so steady-state batches skip writes
//! that would change nothing: creating an account row that exists, or
//! moving a user's last sighting by less than [`USER_RESOLUTION_US`].
//!
//! Entries are added only after the transaction that wrote them commits,
//! so the cache never claims a row that was rolled back. Each replica has
//! its own; a miss only costs the (idempotent) write. The sets are bounded
//! and simply cleared when full.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::sql::UserSighting;

/// A user's `last_seen_at` is refreshed when it moves by at least this
/// much (one hour): it is a registry of who uses an account, not activity
/// data, which the signals themselves hold to the microsecond.
pub const USER_RESOLUTION_US: i64 = 3_600 * 1_000_000;

const MAX_ENTRIES: usize = 1_000_000;

/// Recently written accounts and user sightings.
#[derive(Debug, Default)]
pub struct Recent {
    accounts: Mutex<HashSet<String>>,
    users: Mutex<HashMap<String, (i64, i64)>>,
}

fn account_key(tenant: &str, account: &str) -> String {
    format!("{tenant}\u{0}{account}")
}

fn user_key(tenant: &str, account: &str, user: &str) -> String {
    format!("{tenant}\u{0}{account}\u{0}{user}")
}

impl Recent {
    /// The accounts among `touched` not known to exist.
    pub fn accounts_to_create<'a>(&self, tenant: &str, touched: &[&'a str]) -> Vec<&'a str> {
        let known = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        touched
            .iter()
            .copied()
            .filter(|a| !known.contains(&account_key(tenant, a)))
            .collect()
    }

    /// The sightings that would change a stored user row.
    pub fn users_to_write<'a>(
        &self,
        tenant: &str,
        rows: Vec<UserSighting<'a>>,
    ) -> Vec<UserSighting<'a>> {
        let known = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.into_iter()
            .filter(|((account, user), (first, last))| {
                match known.get(&user_key(tenant, account, user)) {
                    None => true,
                    Some((f, l)) => first < f || *last >= l + USER_RESOLUTION_US,
                }
            })
            .collect()
    }

    /// Records what a committed transaction wrote.
    pub fn committed(&self, tenant: &str, accounts: &[&str], users: &[UserSighting<'_>]) {
        {
            let mut known = self
                .accounts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if known.len() + accounts.len() > MAX_ENTRIES {
                known.clear();
            }
            known.extend(accounts.iter().map(|a| account_key(tenant, a)));
        }
        let mut known = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() + users.len() > MAX_ENTRIES {
            known.clear();
        }
        for ((account, user), (first, last)) in users {
            let e = known
                .entry(user_key(tenant, account, user))
                .or_insert((*first, *last));
            e.0 = e.0.min(*first);
            e.1 = e.1.max(*last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_written_after_a_commit() {
        let r = Recent::default();
        assert_eq!(r.accounts_to_create("t", &["a", "b"]), vec!["a", "b"]);
        let users = vec![(("a", "u"), (100, 200))];
        assert_eq!(r.users_to_write("t", users.clone()).len(), 1);
        r.committed("t", &["a"], &users);
        assert_eq!(r.accounts_to_create("t", &["a", "b"]), vec!["b"]);
        assert_eq!(r.accounts_to_create("other", &["a"]), vec!["a"]);
        // Inside the resolution: nothing to write; earlier first sighting
        // or a later one past the resolution: write.
        assert!(
            r.users_to_write("t", vec![(("a", "u"), (150, 300))])
                .is_empty()
        );
        assert_eq!(r.users_to_write("t", vec![(("a", "u"), (50, 60))]).len(), 1);
        let later = 200 + USER_RESOLUTION_US;
        assert_eq!(
            r.users_to_write("t", vec![(("a", "u"), (later, later))])
                .len(),
            1
        );
    }
}
