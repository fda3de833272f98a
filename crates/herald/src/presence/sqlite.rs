//! Presence members in SQLite, in laravel-echo-server's `key_value` table (one JSON list per
//! channel, edited in a transaction).

use super::memory::{add_to_list, remove_from_list};
use super::{MemberEntry, PresenceStore, Removed, StoreError, decode_members};
use futures_util::future::{BoxFuture, FutureExt};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Member lists in a SQLite file (keys `<channel>:members`, no prefix, as the original).
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating) the database at `<working directory><database_path>`: the path is
    /// appended to the working directory even when it starts with `/`, as laravel-echo-server does.
    pub fn open(database_path: &str) -> anyhow::Result<SqliteStore> {
        let cwd = std::env::current_dir()?;
        let path = PathBuf::from(format!("{}{}", cwd.display(), database_path));
        let connection = Connection::open(&path).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the SQLite presence database {}: {e}. Create its directory, or set databaseConfig.sqlite.databasePath (relative to the working directory)",
                path.display()
            )
        })?;
        // Another process holding the file waits its turn rather than failing the join.
        connection.busy_timeout(std::time::Duration::from_secs(2))?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS key_value (key VARCHAR(255), value TEXT);
             CREATE UNIQUE INDEX IF NOT EXISTS key_index ON key_value (key);",
        )?;
        Ok(SqliteStore {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// Runs `work` on a blocking thread with the connection.
    fn with_connection<'a, T: Send + 'static>(
        &'a self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> BoxFuture<'a, Result<T, StoreError>> {
        let connection = self.connection.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let connection = connection.lock().unwrap_or_else(|p| p.into_inner());
                work(&connection)
            })
            .await
            .map_err(|e| StoreError(format!("SQLite: {e}")))?
            .map_err(|e| StoreError(format!("SQLite: {e}")))
        }
        .boxed()
    }
}

impl PresenceStore for SqliteStore {
    fn add<'a>(
        &'a self,
        channel: &'a str,
        entry: &'a MemberEntry,
    ) -> BoxFuture<'a, Result<Option<Vec<MemberEntry>>, StoreError>> {
        let key = format!("{channel}:members");
        let entry = entry.clone();
        self.with_connection(move |c| update(c, &key, |entries| add_to_list(entries, &entry)))
    }

    fn remove<'a>(
        &'a self,
        channel: &'a str,
        socket_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Removed>, StoreError>> {
        let key = format!("{channel}:members");
        let socket_id = socket_id.to_owned();
        self.with_connection(move |c| {
            update(c, &key, |entries| remove_from_list(entries, &socket_id))
        })
    }

    fn list<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        let key = format!("{channel}:members");
        self.with_connection(move |c| read(c, &key))
    }

    fn channels(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.with_connection(|c| {
            let mut statement =
                c.prepare("SELECT key FROM key_value WHERE key LIKE 'presence-%:members'")?;
            let keys = statement.query_map([], |row| row.get::<_, String>(0))?;
            keys.map(|key| key.map(|k| k.strip_suffix(":members").unwrap_or(&k).to_owned()))
                .collect()
        })
    }
}

fn read(c: &Connection, key: &str) -> rusqlite::Result<Vec<MemberEntry>> {
    let stored = c
        .query_row(
            "SELECT value FROM key_value WHERE key = ?1",
            params![key],
            |row| row.get::<_, String>(0),
        )
        .optional()?;
    Ok(decode_members(stored))
}

/// Reads the list under `key`, lets `change` edit it, and writes it back, in one transaction
/// (the file may be shared). An emptied list leaves no row behind (see the Redis store).
fn update<T>(
    c: &Connection,
    key: &str,
    change: impl FnOnce(&mut Vec<MemberEntry>) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    // IMMEDIATE: take the write lock before reading, so two processes never both read the
    // old list.
    let transaction = Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
    let mut entries = read(&transaction, key)?;
    let Some(outcome) = change(&mut entries) else {
        return Ok(None);
    };
    if entries.is_empty() {
        transaction.execute("DELETE FROM key_value WHERE key = ?1", params![key])?;
    } else {
        let value = serde_json::to_string(&entries)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        transaction.execute(
            "INSERT OR REPLACE INTO key_value (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
    }
    transaction.commit()?;
    Ok(Some(outcome))
}
