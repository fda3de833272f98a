//! `herald doctor --auth-channel …`: sends the auth request a subscribe would send and
//! explains the answer.

use crate::auth::{AuthRequest, HttpAuthorizer, judge};
use crate::config::Config;
use crate::console;
use crate::hub::ChannelKind;
use std::process::ExitCode;

/// What to send, as a browser would.
#[derive(Debug, Default)]
pub(super) struct Probe {
    pub(super) channel: String,
    pub(super) cookie: Option<String>,
    pub(super) bearer: Option<String>,
    pub(super) headers: Vec<String>,
    pub(super) referer: Option<String>,
}

/// Runs the probe and prints the verdict in normal and strict mode.
pub(super) fn run(config: &Config, probe: Probe) -> anyhow::Result<ExitCode> {
    if !ChannelKind::of(&probe.channel).needs_authorization() {
        console::error(&format!(
            "✘ {} is a public channel: it needs no authorization. Probe a private-… or presence-… channel.",
            probe.channel
        ));
        return Ok(ExitCode::FAILURE);
    }
    let mut client_headers = Vec::new();
    for header in &probe.headers {
        match header.split_once(':') {
            Some((name, value)) => {
                client_headers.push((name.trim().to_owned(), value.trim().to_owned()))
            }
            None => anyhow::bail!("--header {header:?} is not \"Name: value\""),
        }
    }
    if let Some(token) = &probe.bearer {
        client_headers.push(("Authorization".to_owned(), format!("Bearer {token}")));
    }
    let request = AuthRequest {
        channel: probe.channel.clone(),
        socket_id: "1234.5678".to_owned(),
        client_headers,
        handshake_cookie: probe.cookie.clone(),
        referer: probe.referer.clone(),
        forwarded_for: None,
    };
    let authorizer = HttpAuthorizer::new(config)?;
    let url = authorizer.url_for(probe.referer.as_deref());
    console::info(&format!("Auth probe: POST {url}"));
    console::info(&format!(
        "  body: channel_name={}&socket_id={}",
        request.channel, request.socket_id
    ));
    console::info(&format!(
        "  cookie: {}; authorization: {}",
        if probe.cookie.is_some() {
            "sent"
        } else {
            "none (a session-guarded route will answer 401/403)"
        },
        if probe.bearer.is_some() {
            "Bearer …"
        } else {
            "none"
        }
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = match runtime.block_on(authorizer.ask(&request)) {
        Ok(answer) => answer,
        Err(refusal) => {
            console::error(&format!("✘ {}", refusal.reason));
            console::info(
                "Check authHost (scheme, host, port) and that the app is reachable from where Herald runs.",
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let body = String::from_utf8_lossy(&answer.body);
    console::info(&format!(
        "Answer: HTTP {}, body: {}",
        answer.status,
        body.trim()
    ));
    let kind = ChannelKind::of(&request.channel);
    let normal = judge(kind, answer.status, &answer.body, false, true);
    let strict = judge(kind, answer.status, &answer.body, true, true);
    match &normal {
        Ok(grant) => {
            console::success("Granted (status 200).");
            if kind == ChannelKind::Presence {
                match &grant.channel_data {
                    Some(data) => console::info(&format!("  presence member: {data}")),
                    None => console::warning(
                        "  no channel_data: the socket joins, but presence members will not list it.",
                    ),
                }
            }
        }
        Err(refusal) => console::error(&format!("✘ Refused: {}", refusal.reason)),
    }
    match (&normal, &strict) {
        (Ok(_), Err(refusal)) => console::warning(&format!(
            "With authStrict this would be refused: {}. An app answering 200 with such a body usually means a failure it did not signal with its status.",
            refusal.reason.trim_start_matches("strict mode: ")
        )),
        (Ok(_), Ok(_)) => console::info("authStrict would grant it too."),
        _ => {}
    }
    let granted = if config.auth.strict {
        strict.is_ok()
    } else {
        normal.is_ok()
    };
    Ok(if granted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
