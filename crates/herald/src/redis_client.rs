//! Connecting to Redis from `databaseConfig.redis`, shared by the source, presence and doctor.

use crate::config::RedisOptions;

/// A Redis client for `options` (no I/O happens until a connection is asked for).
pub fn client(options: &RedisOptions) -> redis::RedisResult<redis::Client> {
    match options.tls.as_ref().and_then(|tls| tls.ca_pem.as_ref()) {
        Some(ca_pem) => redis::Client::build_with_tls(
            url(options).as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca_pem.as_bytes().to_vec()),
            },
        ),
        None => redis::Client::open(url(options).as_str()),
    }
}

/// Escapes glob characters so text matches literally in PSUBSCRIBE and SCAN patterns.
pub fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Every key matching `pattern`, by SCAN (never KEYS, which blocks Redis on a big keyspace).
pub async fn scan_keys<C: redis::aio::ConnectionLike>(
    connection: &mut C,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(500)
            .query_async(connection)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// `host:port`, for log lines (never the password).
pub fn describe(options: &RedisOptions) -> String {
    format!("{}:{}", host_for_url(&options.host), options.port)
}

/// `redis[s]://[user[:password]@]host:port/db[#insecure]`.
fn url(options: &RedisOptions) -> String {
    let scheme = if options.tls.is_some() {
        "rediss"
    } else {
        "redis"
    };
    let insecure = match &options.tls {
        Some(tls) if !tls.verify => "#insecure",
        _ => "",
    };
    let credentials = match (&options.username, &options.password) {
        (Some(user), Some(pass)) => format!("{}:{}@", encode(user), encode(pass)),
        (None, Some(pass)) => format!(":{}@", encode(pass)),
        (Some(user), None) => format!("{}@", encode(user)),
        (None, None) => String::new(),
    };
    format!(
        "{scheme}://{credentials}{}:{}/{}{insecure}",
        host_for_url(&options.host),
        options.port,
        options.db
    )
}

fn host_for_url(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedisTls;

    fn options() -> RedisOptions {
        RedisOptions {
            host: "127.0.0.1".into(),
            port: 6379,
            username: None,
            password: None,
            db: 0,
            key_prefix: String::new(),
            tls: None,
        }
    }

    #[test]
    fn prefixes_are_literal_patterns() {
        assert_eq!(escape_glob("laravel_database_"), "laravel_database_");
        assert_eq!(escape_glob("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }

    #[test]
    fn urls() {
        assert_eq!(url(&options()), "redis://127.0.0.1:6379/0");
        let o = RedisOptions {
            password: Some("p@ss:w/rd".into()),
            username: Some("app".into()),
            tls: Some(RedisTls {
                ca_pem: None,
                verify: false,
            }),
            db: 2,
            host: "::1".into(),
            ..options()
        };
        assert_eq!(
            url(&o),
            "rediss://app:p%40ss%3Aw%2Frd@[::1]:6379/2#insecure"
        );
        assert!(client(&o).is_ok());
        assert_eq!(describe(&o), "[::1]:6379");
    }
}
