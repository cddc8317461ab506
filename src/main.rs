//! The `mailc` binary: argument parsing only; the work is in `mailc::cli`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mailc::cli;

#[derive(Parser)]
#[command(
    name = "mailc",
    version,
    about = "A mail server declared in one checked KDL file"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and compile a config; print every diagnostic. Exit 1 on errors.
    Check {
        config: PathBuf,
        /// Do not read secret files (for builds where secrets are not present).
        #[arg(long)]
        offline: bool,
    },
    /// Print the compiled tables as deterministic JSON.
    Compile {
        config: PathBuf,
        /// Write to FILE instead of stdout (atomically).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Do not read secret files.
        #[arg(long)]
        offline: bool,
    },
    /// Print the JSON Schema of the configuration or of the compiled tables.
    Schema {
        #[arg(value_enum, default_value = "config")]
        kind: cli::SchemaKind,
    },
    /// Show where a recipient address goes, and why.
    Explain {
        config: PathBuf,
        /// The recipient address to explain (optional with --retry or --message).
        #[arg(required_unless_present_any = ["retry", "message"])]
        address: Option<String>,
        /// Print the retry timeline of a deferred message: every attempt,
        /// the delay warning, the bounce.
        #[arg(long)]
        retry: bool,
        /// A message file. Without ADDRESS: what the MX's
        /// SPF/DKIM/DMARC/ARC/iprev checks conclude and what the inbound
        /// policy does with it (live DNS), and whether the DNS blocklists
        /// (`inbound { dnsbl }`) list the client; with `scan { }`, what
        /// the scanners (asked now) and their policy say. With ADDRESS: what local
        /// delivery's Sieve scripts would do with it for that recipient
        /// (folders, flags, redirects, vacation reply), delivering nothing.
        #[arg(long, value_name = "FILE")]
        message: Option<PathBuf>,
        /// With --message: the client address the message came from.
        #[arg(
            long,
            value_name = "IP",
            requires = "message",
            default_value = "127.0.0.1"
        )]
        client_ip: std::net::IpAddr,
        /// With --message: the HELO name the client gave.
        #[arg(long, value_name = "NAME", requires = "message", default_value = "")]
        helo: String,
        /// With --message: MAIL FROM (empty for the null sender).
        #[arg(long, value_name = "ADDR", requires = "message", default_value = "")]
        mail_from: String,
        /// With --message: ask this DNS server (IP:PORT) instead of the
        /// configuration's resolver.
        #[arg(long, value_name = "IP:PORT", requires = "message")]
        resolver: Option<std::net::SocketAddr>,
        /// Do not read secret files.
        #[arg(long)]
        offline: bool,
    },
    /// Hash a password with argon2id for `password=` or a password file.
    HashPassword,
    /// Zone-file snippets of every DNS record the domains need.
    Dns {
        config: PathBuf,
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Compare the wanted DNS records with live DNS: exit 0 in sync, 2 changes, 1 error.
    Plan {
        config: PathBuf,
        /// Ask this DNS server (IP:PORT) instead of the configuration's
        /// first `resolver` (or, without one, the system's).
        #[arg(long)]
        resolver: Option<std::net::SocketAddr>,
        #[arg(long, value_enum, default_value = "text")]
        format: PlanFormat,
        /// Also list the records that are in sync.
        #[arg(long, short)]
        verbose: bool,
    },
    /// DKIM key management.
    Dkim {
        #[command(subcommand)]
        action: DkimAction,
    },
    /// Run the server: every listener of the config. SIGHUP reloads, SIGTERM stops.
    Serve { config: PathBuf },
    /// Send a message, sendmail-compatible (-t -i -f -F -C; message on stdin).
    /// Also runs so when the binary is invoked as `sendmail`.
    Sendmail {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Deliver a message from standard input into local Maildirs, with
    /// Sieve, as the server would (an MDA for Postfix's mailbox_command,
    /// fetchmail's mda, getmail): `mailc deliver [-C CONFIG] [-f SENDER]
    /// -d RECIPIENT...`. Exits with sysexits codes (0, 67, 73, 75, 77).
    Deliver {
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Summarise the DMARC aggregate and TLS-RPT reports other servers
    /// sent about our domains (a Maildir of received reports).
    Report {
        /// The config: resolves an address given to --mailbox, or without
        /// --mailbox finds the mailboxes the domains' rua/tls-rpt reach.
        config: Option<PathBuf>,
        /// A Maildir path, or an address of ours (with the config).
        #[arg(long, value_name = "PATH|ADDRESS")]
        mailbox: Option<String>,
        /// Print JSON (a stable shape) instead of tables.
        #[arg(long)]
        json: bool,
        /// Only reports whose period ends on or after this day (YYYY-MM-DD, UTC).
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
    },
    /// Inspect and manage the queue of a (running or stopped) server.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// TLS certificates.
    Tls {
        #[command(subcommand)]
        action: TlsAction,
    },
}

#[derive(Subcommand)]
enum TlsAction {
    /// Every certificate of the config: names, issuer, expiry, source, and
    /// for ACME the last renewal attempt and error.
    Status { config: PathBuf },
    /// DANE key rollover, the switch step: once the next key's TLSA record
    /// has been published for the TTL, serve a certificate on it (ACME:
    /// the running server renews on it; certificate files: a CSR and what
    /// to do). Exit 0 done, 1 refused or failed, 3 still pending.
    Rollover {
        config: PathBuf,
        /// Switch although the next key's record has been seen published
        /// for less than the TTL (it must still be published).
        #[arg(long)]
        force: bool,
        /// Ask this DNS server (IP:PORT) instead of the configuration's
        /// resolver.
        #[arg(long, value_name = "ADDR")]
        resolver: Option<std::net::SocketAddr>,
        /// How long to wait for the running server to carry out an ACME
        /// switch.
        #[arg(long, value_name = "SECS", default_value_t = 300)]
        wait: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum DkimAction {
    /// Create every missing DKIM key the config names (never overwrites).
    Keygen { config: PathBuf },
}

#[derive(Subcommand)]
enum QueueAction {
    /// List queued messages.
    List {
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Show one queued message's envelope and delivery status.
    Show {
        config: PathBuf,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a message from the queue (it is not delivered).
    Remove { config: PathBuf, id: String },
    /// Retry pending deliveries now: all, or those of one queue id or
    /// recipient domain.
    Flush {
        config: PathBuf,
        /// A queue id or a recipient domain.
        target: Option<String>,
    },
    /// Fail every pending delivery of a message now: the sender gets one
    /// DSN, then the message leaves the queue.
    Bounce { config: PathBuf, id: String },
}

fn main() -> ExitCode {
    // sendmail's command line is not clap's (`-oi`, `-bm`, `-V envid`):
    // `mailc sendmail ...` and a `sendmail` link parse it themselves.
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let invoked_as = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    if invoked_as.as_deref() == Some("sendmail") {
        return exit(cli::sendmail::run(&argv[1..]));
    }
    if argv.get(1).map(String::as_str) == Some("sendmail") {
        return exit(cli::sendmail::run(&argv[2..]));
    }
    let args = Args::parse();
    let code = match args.command {
        Command::Check { config, offline } => cli::check(&config, offline),
        Command::Compile {
            config,
            output,
            offline,
        } => cli::compile(&config, output.as_deref(), offline),
        Command::Schema { kind } => cli::schema(kind),
        Command::Explain {
            config,
            address: Some(address),
            message: Some(message),
            mail_from,
            offline,
            ..
        } => cli::explain::run_delivery(&config, &address, &message, &mail_from, offline),
        Command::Explain {
            config,
            address: None,
            message: Some(message),
            client_ip,
            helo,
            mail_from,
            resolver,
            offline,
            ..
        } => cli::explain::run_message(
            &config,
            &cli::explain::MessageArgs {
                message,
                client_ip,
                helo,
                mail_from,
                resolver,
            },
            offline,
        ),
        Command::Explain {
            config,
            address,
            retry,
            offline,
            ..
        } => cli::explain::run(&config, address.as_deref(), retry, offline),
        Command::HashPassword => cli::hash_password(),
        Command::Serve { config } => mailc::runtime::serve(&config),
        Command::Dns { config, domain } => cli::dns::dns(&config, domain.as_deref()),
        Command::Plan {
            config,
            resolver,
            format,
            verbose,
        } => cli::dns::plan(
            &config,
            resolver,
            matches!(format, PlanFormat::Json),
            verbose,
        ),
        Command::Dkim {
            action: DkimAction::Keygen { config },
        } => cli::dns::keygen(&config),
        Command::Sendmail { args } => cli::sendmail::run(&args),
        Command::Deliver { args } => cli::deliver::run(&args),
        Command::Report {
            config,
            mailbox,
            json,
            since,
        } => cli::reports::run(
            config.as_deref(),
            mailbox.as_deref(),
            json,
            since.as_deref(),
        ),
        Command::Tls {
            action: TlsAction::Status { config },
        } => cli::tls::status(&config),
        Command::Tls {
            action:
                TlsAction::Rollover {
                    config,
                    force,
                    resolver,
                    wait,
                },
        } => cli::rollover::run(&config, resolver, force, wait),
        Command::Queue { action } => {
            use cli::queue::{Action, run};
            match action {
                QueueAction::List { config, json } => run(&config, Action::List, None, json),
                QueueAction::Show { config, id, json } => {
                    run(&config, Action::Show, Some(&id), json)
                }
                QueueAction::Remove { config, id } => {
                    run(&config, Action::Remove, Some(&id), false)
                }
                QueueAction::Flush { config, target } => {
                    run(&config, Action::Flush, target.as_deref(), false)
                }
                QueueAction::Bounce { config, id } => {
                    run(&config, Action::Bounce, Some(&id), false)
                }
            }
        }
    };
    exit(code)
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
