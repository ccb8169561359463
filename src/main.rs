//! The `pricehub` binary: parses the command line and hands over to `pricehub::run`.

use clap::{Parser, Subcommand};
use pricehub::config::{
    AllArgs, CollectorArgs, ImportArgs, LogArgs, MigrateArgs, ProviderArgs, ServeArgs,
};
use pricehub::{healthcheck, run, secret_files, telemetry};

/// Self-hostable price platform: freight rates, live prices, BTC buy orders.
///
/// With no subcommand, runs everything in one process on an embedded SQLite database
/// (same as `pricehub all`).
#[derive(Parser, Debug)]
#[command(name = "pricehub", version = telemetry::VERSION, long_version = long_version())]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    /// Settings of the default (`all`) mode when no subcommand is given.
    #[command(flatten)]
    all: AllArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

fn long_version() -> &'static str {
    Box::leak(
        format!(
            "{} (commit {})",
            telemetry::full_version(),
            telemetry::COMMIT
        )
        .into_boxed_str(),
    )
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API and pages against a database.
    Serve(ServeArgs),
    /// Run everything in one process (the default): SQLite in a data directory, demo data.
    All(AllArgs),
    /// Load a pg_dump of the rates database (idempotent).
    Import(ImportArgs),
    /// Apply database migrations (adopts a database loaded with `psql < rates.sql`).
    Migrate(MigrateArgs),
    /// Serve the live price feed on TCP (original wire format) with an HTTP side port.
    Provider(ProviderArgs),
    /// Collect the live feed from a provider into the database.
    Collector(CollectorArgs),
    /// Probe a pricehub HTTP endpoint (`/readyz` by default): exit 0 when healthy, 1 when not.
    Healthcheck(healthcheck::HealthcheckArgs),
}

fn main() -> std::process::ExitCode {
    if let Err(e) = secret_files::load_from_environment() {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(2);
    }
    let cli = Cli::parse();
    telemetry::init_logging(&cli.log);
    pricehub::http::server::raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::All(cli.all));
    if let Command::Healthcheck(a) = command {
        return runtime.block_on(healthcheck::run(a));
    }
    let result = runtime.block_on(async {
        match command {
            Command::Serve(a) => run::serve(a).await,
            Command::All(a) => run::all(a).await,
            Command::Import(a) => run::import(a).await,
            Command::Migrate(a) => run::migrate(a).await,
            Command::Provider(a) => run::provider(a).await,
            Command::Collector(a) => run::collector(a).await,
            Command::Healthcheck(_) => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "pricehub failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
