//! The `jet` binary: parse settings, open the data directory, serve until SIGTERM/SIGINT;
//! `jet healthcheck` asks a running broker's admin server whether it is ready; `jet topic`,
//! `produce`, `consume`, `group` and `cluster` are the admin CLI (`jet::cli`).

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::{CommandFactory, FromArgMatches};
use tracing_subscriber::EnvFilter;

use jet::admin::AdminState;
use jet::broker::Broker;
use jet::cluster::gossip::{Discovery, IdConflict};
use jet::config::{Cli, Command, HealthcheckArgs, LogFormat};

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let cli = match cli.command {
        Some(Command::Healthcheck(args)) => return healthcheck(&args),
        Some(Command::Admin(command)) => return jet::cli::run(command),
        command => Cli { command, ..cli },
    };
    let broker_matches = matches.subcommand_matches("serve").unwrap_or(&matches);
    let mut config = cli.into_broker_config();
    init_logging(config.log_format);
    let resolution = match config.resolve(broker_matches) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    jet::config::startup_log::log_settings(&config, &resolution);
    if let Err(e) = config.cluster.check() {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }
    if let Err(e) = jet::broker::topic_config::validate_broker_settings(&config.kafka) {
        tracing::error!("invalid setting: {e}");
        return ExitCode::from(2);
    }
    if config.advertises_a_wildcard() {
        let chosen = jet::config::advertise::for_wildcard_listener();
        tracing::info!(
            host = chosen.host,
            reason = chosen.reason,
            "advertising a host for the listener on all interfaces"
        );
        config.default_advertised_host = Some(chosen.host);
    }
    return_large_buffers_to_the_system();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut config = config;
        // First, so probes get an answer (503 "starting") while the logs recover.
        let admin_listener = match tokio::net::TcpListener::bind((
            config.admin_listen.host.as_str(),
            config.admin_listen.port,
        ))
        .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(admin_listen = %config.admin_listen, error = %e, "cannot bind the admin HTTP listener");
                return ExitCode::FAILURE;
            }
        };
        let admin_addr = admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let admin = Arc::new(AdminState::default());
        let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        let admin_task = tokio::spawn(jet::admin::serve(admin_listener, admin.clone(), async move {
            let _ = admin_stopped.await;
        }));
        let mut listeners = Vec::with_capacity(config.listen.len());
        for (i, listener) in config.listen.clone().iter().enumerate() {
            let bound = match tokio::net::TcpListener::bind((listener.addr.host.as_str(), listener.addr.port)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(listener = %listener, error = %e, "cannot bind the Kafka listener");
                    return ExitCode::FAILURE;
                }
            };
            // `Listeners` holds at most MAX_LISTENERS (16).
            let id = jet::config::ListenerId(u8::try_from(i).unwrap_or(u8::MAX));
            // With port 0 the OS picked the port: advertise that one (also when the
            // advertised listener names only a host).
            if let Ok(addr) = bound.local_addr() {
                config.bound_to(id, addr.port());
                if i == 0 {
                    admin.kafka_listener_bound(addr);
                }
            }
            listeners.push((id, bound));
        }
        let data_dir = config.data_dir.clone();
        let broker = match tokio::task::spawn_blocking(move || Broker::open(config)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::error!(data_dir = %data_dir.display(), error = %e, "cannot open the data directory");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                tracing::error!(error = %e, "startup task failed");
                return ExitCode::FAILURE;
            }
        };
        admin.broker_opened(broker.clone());
        // After the data directory: a broker still recovering is not advertised to others.
        let discovery = match start_gossip(&broker).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("cannot start gossip: {}", error_chain(&e));
                // Nothing was served yet, but the logs are open: close them cleanly.
                broker.begin_shutdown();
                let closer = broker.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || closer.close()).await {
                    tracing::warn!(error = %e, "closing the data directory failed");
                }
                return ExitCode::FAILURE;
            }
        };
        if discovery.is_some() {
            match jet::cluster::runtime::ClusterRuntime::start(&broker).await {
                Ok(runtime) => broker.attach_replication(runtime),
                Err(e) => {
                    tracing::error!("cannot start replication: {}", error_chain(&e));
                    broker.begin_shutdown();
                    let closer = broker.clone();
                    if let Err(e) = tokio::task::spawn_blocking(move || closer.close()).await {
                        tracing::warn!(error = %e, "closing the data directory failed");
                    }
                    return ExitCode::FAILURE;
                }
            }
        }
        let mut bound = listeners.iter().filter_map(|(_, l)| l.local_addr().ok()).map(|a| a.to_string());
        let local = bound.next().unwrap_or_default();
        let others: Vec<String> = bound.collect();
        tracing::info!(
            listen = %local,
            other_listeners = %others.join(","),
            admin = %admin_addr,
            gossip = discovery.as_ref().map(|d| d.gossip_addr().to_string()).unwrap_or_else(|| "off".into()),
            advertised = format!("{}:{}", broker.host, broker.port),
            node_id = broker.node_id,
            cluster_id = broker.cluster_id,
            "jet is ready"
        );
        // /readyz answers 503 "draining" from the signal until the drain is done.
        let refused = Arc::new(OnceLock::new());
        jet::server::run_listeners(listeners, broker, shutdown_or_refusal(discovery.clone(), refused.clone())).await;
        if let Some(discovery) = &discovery {
            // A refused broker must not announce a leave: peers would apply it to the id,
            // which belongs to the other broker.
            let stopped = if refused.get().is_some() { discovery.shutdown().await } else { discovery.leave().await };
            if let Err(e) = stopped {
                tracing::warn!("gossip did not stop cleanly: {}", error_chain(&e));
            }
        }
        let _ = stop_admin.send(());
        if let Err(e) = admin_task.await {
            tracing::warn!(error = %e, "admin server task failed");
        }
        if refused.get().is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS }
    })
}

/// Gossip when the cluster flags ask for it, attached to the broker's directory.
async fn start_gossip(
    broker: &Arc<Broker>,
) -> Result<Option<Arc<dyn Discovery>>, jet::cluster::directory::GossipStartError> {
    let discovery =
        jet::cluster::directory::start_gossip(&broker.config.cluster, broker.cluster.local().clone()).await?;
    if let Some(d) = &discovery {
        broker.cluster.attach(d.clone());
    }
    Ok(discovery)
}

/// Resolves on SIGTERM/SIGINT, or when gossip finds this broker's node id held by a
/// broker already in the cluster (recorded in `refused`).
async fn shutdown_or_refusal(discovery: Option<Arc<dyn Discovery>>, refused: Arc<OnceLock<IdConflict>>) {
    let refusal = async move {
        match discovery {
            Some(d) => jet::cluster::directory::refusal(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = shutdown_signal() => {}
        conflict = refusal => {
            tracing::error!("{conflict}: refusing to run with a node id another broker holds; give this broker another --node-id");
            let _ = refused.set(conflict);
        }
    }
}

/// An error and its causes, outermost first.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `jet healthcheck`: exit 0 if the broker at `--admin-listen` is ready, else 1.
fn healthcheck(args: &HealthcheckArgs) -> ExitCode {
    let addr = jet::admin::healthcheck::connect_address(&args.admin_listen.to_string());
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jet healthcheck: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    match runtime.block_on(jet::admin::healthcheck::check_ready(&addr, timeout)) {
        Ok(()) => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jet healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,fjall=warn,lsm_tree=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}

/// Makes glibc serve every allocation of 256 KiB or more (request frames, decompression
/// scratch, read buffers) with its own mapping, returned to the system when freed.
/// By default the threshold rises with the largest buffer freed (up to 32 MiB), after
/// which such buffers come from per-thread arenas that keep them when freed: with
/// many runtime workers the resident set then grows with the number of threads times
/// the largest buffer, though the memory in use is bounded (tests/memory_bound.rs).
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const THRESHOLD: libc::c_int = 256 << 10;
        // SAFETY: mallopt only changes allocator tuning; called before other threads start.
        if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) } != 1 {
            tracing::warn!("mallopt(M_MMAP_THRESHOLD) failed; freed large buffers may stay resident");
        }
    }
}
