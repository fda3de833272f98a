//! `herald client:add [id]` and `herald client:remove [id]`.
//!
//! Unlike laravel-echo-server, these edit the file that `--config`/`--dir` name, keep every
//! key (unknown ones included) and never write environment overrides into it.

use super::ConfigLocation;
use crate::config::{default_options, read_file_object, write_file_object};
use crate::console;
use clap::Args;
use rand::RngCore;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Options of `client:add` and `client:remove`.
#[derive(Args, Debug)]
pub(super) struct ClientArgs {
    /// The appId (random when adding without one).
    id: Option<String>,
    #[command(flatten)]
    location: ConfigLocation,
}

/// Random lowercase hex of `bytes` bytes.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Adds a client, or gives an existing appId a new key.
pub(super) fn add(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let path = args.location.path();
    let created = !path.exists();
    let mut file = if created {
        // What `herald start` runs on without a file, presence in memory included: adding a
        // client must not move presence to a Redis the setup may not have.
        let mut defaults = default_options();
        defaults["database"] = json!("memory");
        defaults
    } else {
        read_file_object(&path)?
    };
    let app_id = args.id.clone().unwrap_or_else(|| random_hex(8));
    let key = random_hex(16);
    let clients = clients_mut(&mut file)?;
    let existing = clients
        .iter_mut()
        .find(|c| c.get("appId").and_then(Value::as_str) == Some(app_id.as_str()));
    let message = match existing {
        Some(client) => {
            client["key"] = json!(key);
            "API Client updated!"
        }
        None => {
            clients.push(json!({"appId": app_id, "key": key}));
            "API Client added!"
        }
    };
    write_file_object(&path, &file)?;
    if created {
        console::info(&format!(
            "No config file at {}: created it with the settings `herald start` uses without one (presence members in memory: \"database\": \"memory\"; Redis subscriber on 127.0.0.1:6379) and this client. `herald init` asks laravel-echo-server's questions instead.",
            path.display()
        ));
    }
    console::success(message);
    console::info(&format!("appId: {app_id}"));
    console::info(&format!("key: {key}"));
    Ok(ExitCode::SUCCESS)
}

/// Removes the client with that appId; an unknown or missing id removes nothing.
pub(super) fn remove(args: &ClientArgs) -> anyhow::Result<ExitCode> {
    let Some(app_id) = args.id.as_deref() else {
        console::error("Error: give the appId to remove: herald client:remove <appId>");
        return Ok(ExitCode::FAILURE);
    };
    let path = args.location.path();
    if !path.exists() {
        console::error(&format!(
            "Error: The config file could not be found: {}",
            path.display()
        ));
        return Ok(ExitCode::FAILURE);
    }
    let mut file = read_file_object(&path)?;
    let clients = clients_mut(&mut file)?;
    let before = clients.len();
    clients.retain(|c| c.get("appId").and_then(Value::as_str) != Some(app_id));
    if clients.len() == before {
        console::error(&format!(
            "Error: no client with appId {app_id:?} in {}; nothing was removed.",
            path.display()
        ));
        return Ok(ExitCode::FAILURE);
    }
    write_file_object(&path, &file)?;
    console::success(&format!("Client removed: {app_id}"));
    Ok(ExitCode::SUCCESS)
}

fn clients_mut(file: &mut Value) -> anyhow::Result<&mut Vec<Value>> {
    let Value::Object(map) = file else {
        anyhow::bail!("the config file's top level is not a JSON object");
    };
    let clients = map.entry("clients").or_insert_with(|| json!([]));
    if clients.is_null() {
        *clients = json!([]);
    }
    clients.as_array_mut().ok_or_else(|| {
        anyhow::anyhow!("\"clients\" in the config file is not an array; fix it by hand")
    })
}
