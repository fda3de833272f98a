//! Native TLS: certificates from `sslCertPath`/`sslKeyPath`/`sslCertChainPath`/`sslPassphrase`,
//! reloaded without a restart when the files change or on SIGHUP, and a plain-HTTP request on
//! the TLS port answered with a clear 400 instead of a dropped connection.

use crate::config::TlsFiles;
use crate::console;
use anyhow::Context;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsConfig;
use futures_util::future::BoxFuture;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// How often certificate files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The PEM certificate (with the chain appended), the key and its passphrase.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
    passphrase: Option<String>,
}

fn read(key: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    if path.is_empty() {
        anyhow::bail!("{key} is empty: with \"protocol\": \"https\", set it to a PEM file");
    }
    std::fs::read(path).with_context(|| format!("cannot read {key} {path}"))
}

fn read_pem(files: &TlsFiles) -> anyhow::Result<Pem> {
    let mut cert = read("sslCertPath", &files.cert_path)?;
    if !files.chain_path.is_empty() {
        let chain = read("sslCertChainPath", &files.chain_path)?;
        if !cert.ends_with(b"\n") {
            cert.push(b'\n');
        }
        cert.extend_from_slice(&chain);
    }
    let key = read("sslKeyPath", &files.key_path)?;
    let passphrase = (!files.passphrase.is_empty()).then(|| files.passphrase.clone());
    Ok(Pem {
        cert,
        key,
        passphrase,
    })
}

/// Loads the certificate and key; errors name the file and what is wrong with it.
pub(super) async fn load(files: &TlsFiles) -> anyhow::Result<RustlsConfig> {
    let pem = read_pem(files)?;
    let config = match pem.passphrase {
        Some(passphrase) => {
            RustlsConfig::from_pem_with_password(pem.cert, pem.key, passphrase).await
        }
        None => RustlsConfig::from_pem(pem.cert, pem.key).await,
    };
    let config = config.map_err(|e| {
        anyhow::anyhow!(
            "cannot use the TLS certificate {} with the key {}: {e}. Both must be PEM; an encrypted key must be PKCS#8 with sslPassphrase set",
            files.cert_path,
            files.key_path
        )
    })?;
    warn_if_key_readable_by_others(&files.key_path);
    http1_only_alpn(&config);
    Ok(config)
}

async fn reload(config: &RustlsConfig, files: &TlsFiles) -> anyhow::Result<()> {
    // Off the runtime's workers: file reads block.
    let owned = files.clone();
    let pem = tokio::task::spawn_blocking(move || read_pem(&owned)).await??;
    match pem.passphrase {
        Some(passphrase) => {
            config
                .reload_from_pem_with_password(pem.cert, pem.key, passphrase)
                .await
        }
        None => config.reload_from_pem(pem.cert, pem.key).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    http1_only_alpn(config);
    Ok(())
}

/// Offers only `http/1.1` in ALPN: Herald serves no HTTP/2 (see `timeouts`), and a browser
/// offered `h2` would speak it and be refused.
fn http1_only_alpn(config: &RustlsConfig) {
    let mut server_config = (*config.get_inner()).clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.reload_from_config(Arc::new(server_config));
}

/// Says so when every user of the machine can read the private key.
fn warn_if_key_readable_by_others(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    let mode = metadata.permissions().mode();
    if mode & 0o004 != 0 {
        console::warning(&format!(
            "The TLS private key {path} is readable by every user of this machine (mode {:o}): run `chmod 600 {path}` (or 640 with a group Herald runs in).",
            mode & 0o777
        ));
    }
}

/// The files' modification times, read without blocking the runtime's workers.
async fn modified(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let mut times = Vec::with_capacity(3);
    for path in [&files.cert_path, &files.key_path, &files.chain_path] {
        let metadata = tokio::fs::metadata(Path::new(path.as_str())).await;
        times.push(metadata.and_then(|m| m.modified()).ok());
    }
    times
}

/// Reloads the certificate when its files change (checked every 5 s) or when `hangup` is
/// notified (SIGHUP). A failed reload keeps the old certificate and says why.
pub(super) async fn watch(config: RustlsConfig, files: TlsFiles, hangup: Arc<Notify>) {
    let mut seen = modified(&files).await;
    loop {
        let forced = tokio::select! {
            _ = tokio::time::sleep(WATCH_INTERVAL) => false,
            _ = hangup.notified() => true,
        };
        let now = modified(&files).await;
        if !forced && now == seen {
            continue;
        }
        // Let a writer (certbot) finish replacing both files before reading them.
        if !forced {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        seen = modified(&files).await;
        match reload(&config, &files).await {
            Ok(()) => console::success(&format!(
                "TLS certificate reloaded from {}; new connections use it.",
                files.cert_path
            )),
            Err(e) => console::error(&format!(
                "TLS certificate reload failed ({e:#}); still serving the previous certificate."
            )),
        }
    }
}

/// Accepts only connections that start a TLS handshake; anything else (plain HTTP on the
/// HTTPS port) gets a 400 that says to use https, then the connection is closed.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TlsOnly;

impl<S: Send + 'static> Accept<TcpStream, S> for TlsOnly {
    type Stream = TcpStream;
    type Service = S;
    type Future = BoxFuture<'static, io::Result<(TcpStream, S)>>;

    fn accept(&self, mut stream: TcpStream, service: S) -> Self::Future {
        Box::pin(async move {
            stream.set_nodelay(true)?;
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout(
                super::timeouts::FIRST_REQUEST_TIMEOUT,
                stream.peek(&mut first),
            )
            .await;
            match peeked {
                // 0x16: a TLS handshake record.
                Ok(Ok(1)) if first[0] == 0x16 => Ok((stream, service)),
                Ok(Ok(1)) => {
                    let body = "This port speaks HTTPS: use https:// or wss:// (Herald's protocol is \"https\").\n";
                    let response = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        stream.write_all(response.as_bytes()),
                    )
                    .await;
                    let _ = stream.shutdown().await;
                    Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "plain HTTP on the TLS port",
                    ))
                }
                Ok(Ok(_)) | Ok(Err(_)) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before sending anything",
                )),
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no TLS handshake in time",
                )),
            }
        })
    }
}
