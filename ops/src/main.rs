//! `sbctl`: parse flags, run the command, report errors with a non-zero exit.

use clap::Parser;
use switchboard_ops::Cli;
use switchboard_ops::CliError;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout();
    if let Err(error) = switchboard_ops::run(&cli, &mut stdout).await {
        eprintln!("sbctl: {error}");
        let code = match error {
            CliError::Usage(_) => 2,
            _ => 1,
        };
        std::process::exit(code);
    }
}
