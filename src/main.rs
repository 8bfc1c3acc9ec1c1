use clap::{Parser, Subcommand};
use docket::{
    app,
    config::{LogFormat, ServeConfig, StoreConfig, WorkerConfig},
    store::{self, Db},
};

#[derive(Parser)]
#[command(
    name = "docket",
    version,
    about = "Multi-tenant ticket and task management"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format.
    #[arg(
        long,
        env = "DOCKET_LOG",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    log: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API and web UI, and run the background workers.
    Serve {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        serve: ServeConfig,
        /// Run no workers in this process (run `docket worker` processes instead).
        #[arg(long)]
        no_worker: bool,
        #[command(flatten)]
        worker: WorkerConfig,
    },
    /// Run the background workers only (any number of these may run beside `serve
    /// --no-worker` processes on PostgreSQL).
    Worker {
        #[command(flatten)]
        store: StoreConfig,
        #[command(flatten)]
        worker: WorkerConfig,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[command(flatten)]
        store: StoreConfig,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    app::init_logging(cli.log);
    match cli.command {
        Command::Serve {
            store,
            serve,
            no_worker,
            worker,
        } => {
            let running = app::start(&store, &serve, (!no_worker).then_some(worker)).await?;
            let stop = running.stopper();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight requests");
                let _ = stop.send(true);
            });
            running.wait().await?;
        }
        Command::Worker { store, worker } => {
            store::migrate(&store).await?;
            let db = Db::connect(&store).await?;
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                shutdown_signal().await;
                let _ = stop.send(true);
            });
            tracing::info!(backend = ?db.backend(), "docket worker running");
            tokio::join!(
                docket::events::listen(db.clone(), stopped.clone()),
                docket::worker::run(db, worker, stopped)
            );
        }
        Command::Migrate { store } => {
            store::migrate(&store).await?;
            tracing::info!("migrations applied");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
