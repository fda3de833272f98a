//! Presence members in SQLite, in laravel-echo-server's `key_value` table.

use super::{MemberEntry, PresenceStore, StoreError, decode_members};
use futures_util::future::{BoxFuture, FutureExt};
use rusqlite::{Connection, OptionalExtension, params};
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
    fn get<'a>(&'a self, channel: &'a str) -> BoxFuture<'a, Result<Vec<MemberEntry>, StoreError>> {
        let key = format!("{channel}:members");
        let read = self.with_connection(move |c| {
            c.query_row(
                "SELECT value FROM key_value WHERE key = ?1",
                params![key],
                |row| row.get::<_, String>(0),
            )
            .optional()
        });
        async move { Ok(decode_members(read.await?)) }.boxed()
    }

    fn set<'a>(
        &'a self,
        channel: &'a str,
        members: &'a [MemberEntry],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let key = format!("{channel}:members");
        let value = serde_json::to_string(members);
        async move {
            let value = value.map_err(|e| StoreError(e.to_string()))?;
            let empty = members.is_empty();
            self.with_connection(move |c| {
                // An empty channel leaves no row behind (see the Redis store).
                if empty {
                    c.execute("DELETE FROM key_value WHERE key = ?1", params![key])
                } else {
                    c.execute(
                        "INSERT OR REPLACE INTO key_value (key, value) VALUES (?1, ?2)",
                        params![key, value],
                    )
                }
                .map(|_| ())
            })
            .await
        }
        .boxed()
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
