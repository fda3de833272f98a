//! `herald init` (alias `configure`): laravel-echo-server's prompts, or flags for scripts.

use super::client::random_hex;
use crate::config::{default_options, write_file_object};
use crate::console;
use clap::Args;
use dialoguer::{Confirm, Input, Select};
use serde_json::json;
use std::io::IsTerminal;
use std::process::ExitCode;

const DEFAULT_ALLOW_HEADERS: &str = "Origin, Content-Type, X-Auth-Token, X-Requested-With, Accept, Authorization, X-CSRF-TOKEN, X-Socket-Id";

/// Options of `init`. With `--yes` (or no terminal) nothing is asked: flags and defaults answer.
#[derive(Args, Debug)]
pub(super) struct InitArgs {
    /// File to save to (the default answer to the last prompt).
    #[arg(long, default_value = "laravel-echo-server.json")]
    config: String,
    /// Do not prompt; use the flags below and the defaults.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Development mode.
    #[arg(long)]
    dev: bool,
    /// Port to serve from.
    #[arg(long, default_value = "6001")]
    port: String,
    /// Presence store: redis, sqlite or memory.
    #[arg(long, default_value = "redis", value_parser = ["redis", "sqlite", "memory"])]
    database: String,
    /// The Laravel app's URL, for channel authorization.
    #[arg(long, default_value = "http://localhost")]
    auth_host: String,
    /// http or https.
    #[arg(long, default_value = "http", value_parser = ["http", "https"])]
    protocol: String,
    /// TLS certificate (with --protocol https).
    #[arg(long, default_value = "")]
    ssl_cert_path: String,
    /// TLS key (with --protocol https).
    #[arg(long, default_value = "")]
    ssl_key_path: String,
    /// Generate an HTTP API client id and key.
    #[arg(long)]
    add_client: bool,
    /// Allow this origin to call the HTTP API (turns CORS on).
    #[arg(long)]
    cors_origin: Option<String>,
    /// Overwrite the file if it exists (on a terminal, `init` asks instead).
    #[arg(long)]
    force: bool,
}

struct Answers {
    dev: bool,
    port: String,
    database: String,
    auth_host: String,
    protocol: String,
    ssl_cert_path: String,
    ssl_key_path: String,
    add_client: bool,
    cors: Option<(String, String, String)>,
    file: String,
}

/// Asks (or takes from flags) the answers, writes the file, prints what to run next.
pub(super) fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let force = args.force;
    let answers = if interactive {
        ask(&args)?
    } else {
        from_flags(args)
    };
    let mut options = default_options();
    options["devMode"] = json!(answers.dev);
    options["port"] = json!(answers.port);
    options["database"] = json!(answers.database);
    options["authHost"] = json!(answers.auth_host);
    options["protocol"] = json!(answers.protocol);
    if answers.protocol == "https" {
        options["sslCertPath"] = json!(answers.ssl_cert_path);
        options["sslKeyPath"] = json!(answers.ssl_key_path);
    }
    if answers.database != "redis" {
        // Unlike laravel-echo-server, do not leave a Redis subscriber retrying against
        // a Redis that a sqlite/memory setup may not have.
        options["subscribers"]["redis"] = json!(false);
    }
    if answers.add_client {
        let (app_id, key) = (random_hex(8), random_hex(16));
        options["clients"] = json!([{ "appId": app_id, "key": key }]);
        console::info(&format!("appId: {app_id}"));
        console::info(&format!("key: {key}"));
    }
    if let Some((origin, methods, headers)) = answers.cors {
        options["apiOriginAllow"] = json!({
            "allowCors": true, "allowOrigin": origin, "allowMethods": methods, "allowHeaders": headers
        });
    }
    let path = std::env::current_dir()?.join(&answers.file);
    if path.exists() && !force {
        let overwrite =
            interactive && confirm(&format!("{} exists. Overwrite it?", path.display()), false)?;
        if !overwrite {
            console::error(&format!(
                "{} exists and was left as it is. Run herald init --force to overwrite it, or choose another file with --config.",
                path.display()
            ));
            return Ok(ExitCode::FAILURE);
        }
    }
    write_file_object(&path, &options)?;
    let config_flag = if answers.file == "laravel-echo-server.json" {
        String::new()
    } else {
        format!(" --config=\"{}\"", answers.file)
    };
    console::success(&format!(
        "Configuration file saved. Run herald start{config_flag} to run server."
    ));
    Ok(ExitCode::SUCCESS)
}

fn from_flags(args: InitArgs) -> Answers {
    Answers {
        dev: args.dev,
        port: args.port,
        database: args.database,
        auth_host: args.auth_host,
        protocol: args.protocol,
        ssl_cert_path: args.ssl_cert_path,
        ssl_key_path: args.ssl_key_path,
        add_client: args.add_client,
        cors: args.cors_origin.map(|origin| {
            (
                origin,
                "GET, POST".to_owned(),
                DEFAULT_ALLOW_HEADERS.to_owned(),
            )
        }),
        file: args.config,
    }
}

/// A yes/no question answered with Enter, like every other prompt (a lone keypress is not an
/// answer: a `y` typed ahead for the next question must not be taken for this one).
fn confirm(prompt: &str, default: bool) -> anyhow::Result<bool> {
    Ok(Confirm::new()
        .with_prompt(prompt)
        .default(default)
        .wait_for_newline(true)
        .interact()?)
}

fn ask(args: &InitArgs) -> anyhow::Result<Answers> {
    let dev = confirm(
        "Do you want to run this server in development mode?",
        args.dev,
    )?;
    let port: String = Input::new()
        .with_prompt("Which port would you like to serve from?")
        .default(args.port.clone())
        .interact_text()?;
    let databases = ["redis", "sqlite", "memory"];
    let database = databases[Select::new()
        .with_prompt("Which database would you like to use to store presence channel members?")
        .items(databases)
        .default(0)
        .interact()?];
    let auth_host: String = Input::new()
        .with_prompt("Enter the host of your Laravel authentication server.")
        .default(args.auth_host.clone())
        .interact_text()?;
    let protocols = ["http", "https"];
    let protocol = protocols[Select::new()
        .with_prompt("Will you be serving on http or https?")
        .items(protocols)
        .default(0)
        .interact()?];
    let (mut ssl_cert_path, mut ssl_key_path) = (String::new(), String::new());
    if protocol == "https" {
        ssl_cert_path = Input::new()
            .with_prompt("Enter the path to your SSL cert file.")
            .interact_text()?;
        ssl_key_path = Input::new()
            .with_prompt("Enter the path to your SSL key file.")
            .interact_text()?;
    }
    let add_client = confirm(
        "Do you want to generate a client ID/Key for HTTP API?",
        false,
    )?;
    let cors = if confirm(
        "Do you want to setup cross domain access to the API?",
        false,
    )? {
        let origin: String = Input::new()
            .with_prompt("Specify the URI that may access the API")
            .default("http://localhost:80".to_owned())
            .interact_text()?;
        let methods: String = Input::new()
            .with_prompt("Enter the HTTP methods that are allowed for CORS")
            .default("GET, POST".to_owned())
            .interact_text()?;
        let headers: String = Input::new()
            .with_prompt("Enter the HTTP headers that are allowed for CORS")
            .default(DEFAULT_ALLOW_HEADERS.to_owned())
            .interact_text()?;
        Some((origin, methods, headers))
    } else {
        None
    };
    let file: String = Input::new()
        .with_prompt("What do you want this config to be saved as?")
        .default(args.config.clone())
        .interact_text()?;
    Ok(Answers {
        dev,
        port,
        database: database.to_owned(),
        auth_host,
        protocol: protocol.to_owned(),
        ssl_cert_path,
        ssl_key_path,
        add_client,
        cors,
        file,
    })
}
