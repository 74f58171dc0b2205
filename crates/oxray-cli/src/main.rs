//! `oxray`: the command that runs a node's daemon (see the library).

fn main() -> anyhow::Result<()> {
    oxray_cli::init_logging();
    oxray_cli::run(std::env::args_os())
}
