//! `switchboard`: run a site (`serve`), a demo cluster (`dev`), simulated
//! relays and hosts (`sim`), or rebuild from a lone survivor (`recover`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use clap::Subcommand;
use std::time::Duration;
use switchboard_node::SiteConfig;
use switchboard_node::local;
use switchboard_node::recovery as recover;
use tokio::signal::unix::SignalKind;
use tokio::signal::unix::signal;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Raft-replicated control plane for relay-based remote-access VPN gateways"
)]
struct Cli {
    /// Log lines as text for people or as JSON objects for a log pipeline
    /// (or set SWITCHBOARD_LOG_FORMAT). The level comes from RUST_LOG
    /// (default info, openraft warn).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Commands,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// The format from the flag, else from SWITCHBOARD_LOG_FORMAT, else human.
fn log_format(flag: Option<LogFormat>) -> anyhow::Result<LogFormat> {
    use clap::ValueEnum as _;
    match (flag, std::env::var("SWITCHBOARD_LOG_FORMAT")) {
        (Some(format), _) => Ok(format),
        (None, Ok(text)) => LogFormat::from_str(&text, true).map_err(|_| {
            anyhow::anyhow!("SWITCHBOARD_LOG_FORMAT={text:?}: expected human or json")
        }),
        (None, Err(_)) => Ok(LogFormat::Human),
    }
}

#[derive(Subcommand)]
enum Commands {
    /// Run one site.
    Serve {
        /// The site's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a three-site demo cluster on this machine, with relays and hosts.
    Dev {
        /// Directory for data, configs, logs and cluster.json (default: a fresh temp dir, removed on exit).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// First port to use (site n: base+10(n-1) raft, +1 api, +2 http); 0: any free ports.
        #[arg(long, default_value_t = 0)]
        base_port: u16,
        /// Relays to register.
        #[arg(long, default_value_t = 6)]
        relays: u32,
        /// Hosts to attach.
        #[arg(long, default_value_t = 100)]
        hosts: u32,
    },
    /// Make the one site that survived a disaster a cluster of one, to
    /// rebuild from (the site must be stopped). Prints what it discards.
    Recover {
        /// The surviving site's data dir.
        #[arg(long)]
        data_dir: PathBuf,
        /// The site's config, to take its name and addresses from (default:
        /// those it had).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Confirms that every other site is lost and will rejoin afresh.
        #[arg(long)]
        yes_discard_other_sites: bool,
    },
    /// Simulate relays, hosts and clients against a cluster.
    Sim {
        /// The cluster's cluster.json.
        #[arg(long)]
        cluster: PathBuf,
        #[arg(long, default_value_t = 6)]
        relays: u32,
        #[arg(long, default_value = "relay-")]
        relay_prefix: String,
        #[arg(long, default_value_t = 100)]
        hosts: u32,
        #[arg(long, default_value = "host-")]
        host_prefix: String,
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Regions relays and hosts are spread over.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "ap-tokyo,ap-osaka,us-west"
        )]
        regions: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        relay_capacity: u32,
        /// Stop after this many seconds (0: run until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        duration_secs: u64,
        /// Print a report this often.
        #[arg(long, default_value_t = 10)]
        report_every_secs: u64,
    },
}

/// SIGTERM or SIGINT, with the handlers installed at the call (not when
/// first awaited), so a signal that arrives while a command starts up is
/// not the default "die at once" that would orphan its children.
fn terminated() -> impl std::future::Future<Output = ()> {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.with_ansi(ansi).init(),
        // One object per line, with the span (and its request id) it ran in.
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(log_format(cli.log_format)?);
    match cli.command {
        Commands::Serve { config } => {
            let config = SiteConfig::load(&config)?;
            switchboard_node::serve(config, terminated()).await?;
        }
        Commands::Recover {
            data_dir,
            config,
            yes_discard_other_sites,
        } => {
            eprintln!("{}", recover::WARNING);
            if !yes_discard_other_sites {
                anyhow::bail!(
                    "nothing changed: run again with --yes-discard-other-sites to recover {}",
                    data_dir.display()
                );
            }
            let config = config.map(|path| SiteConfig::load(&path)).transpose()?;
            let recovered = recover::recover(&data_dir, config.as_ref())?;
            println!(
                "recovered {}: a cluster of one at log index {} ({} entries of its log applied on recovery), {} routes, {} relays, node-info era {}",
                data_dir.display(),
                recovered.applied_index,
                recovered.applied_index - recovered.applied_before,
                recovered.routes,
                recovered.relays,
                recovered.era
            );
            println!("start it with switchboard serve, then add the other sites as new members");
        }
        Commands::Sim {
            cluster,
            relays,
            relay_prefix,
            hosts,
            host_prefix,
            clients,
            regions,
            relay_capacity,
            duration_secs,
            report_every_secs,
        } => {
            let options = local::SimOptions {
                relays,
                relay_prefix,
                hosts,
                host_prefix,
                clients,
                regions,
                relay_capacity,
                report_every: Duration::from_secs(report_every_secs.max(1)),
            };
            let duration = (duration_secs > 0).then(|| Duration::from_secs(duration_secs));
            local::run_sim(&cluster, &options, duration, terminated()).await?;
        }
        Commands::Dev {
            dir,
            base_port,
            relays,
            hosts,
        } => {
            let binary = std::env::current_exe().context("finding the switchboard binary")?;
            let options = local::DevOptions {
                binary,
                dir,
                base_port,
                relays,
                hosts,
            };
            let stop = terminated();
            tokio::pin!(stop);
            // A Ctrl-C while it starts drops what started: each site stops
            // as its handle goes, the simulator as this process ends.
            let mut demo = tokio::select! {
                demo = local::start_demo(&options) => demo?,
                _ = &mut stop => {
                    println!("Stopped while starting.");
                    return Ok(());
                }
            };
            tokio::select! {
                _ = &mut stop => {
                    println!("Stopping...");
                    demo.stop();
                }
                _ = demo.all_sites_stopped() => {
                    demo.stop();
                    anyhow::bail!("every site has stopped; see their logs in the demo's directory");
                }
            }
        }
    }
    Ok(())
}
