//! `sbctl`: parse flags, run the command, report errors with a non-zero exit.

use clap::Parser;
use switchboard_ops::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout();
    if let Err(error) = switchboard_ops::run(&cli, &mut stdout).await {
        let code = switchboard_ops::report(&error, cli.json, &mut stdout, &mut std::io::stderr());
        std::process::exit(code);
    }
}
