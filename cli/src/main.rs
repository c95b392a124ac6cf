//! ukey: the command-line face of token-hal.
//!
//! Human output by default, `--json` for scripts. On failure it exits non-zero with one line
//! on stderr, `ukey: <error>`. Invoked as `softhsm2-util` (a link), it is the SoftHSM2 drop-in.

#![forbid(unsafe_code)]

mod agent;
mod args;
mod bind;
mod cms;
mod csr;
mod ctx;
mod demo;
mod envelope;
mod keys;
mod mgmt;
mod ops;
mod out;
mod seal;
mod sim;
mod softhsm;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::args::{Cli, Command};
use crate::ctx::{Ctx, Res};

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let prog = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if prog == "softhsm2-util" {
        return softhsm::main(argv.into_iter().skip(1).collect());
    }
    if argv.get(1).is_some_and(|a| a == "softhsm") {
        return softhsm::main(argv.into_iter().skip(2).collect());
    }

    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("ukey: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ukey: {}", e.0.replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Res<()> {
    if let Command::Softhsm { args } = &cli.command {
        // `ukey --json softhsm ...`: global options came first; pass the rest through.
        let code = softhsm::main(args.iter().map(OsString::from).collect());
        if code == ExitCode::SUCCESS {
            return Ok(());
        }
        std::process::exit(1);
    }
    let ctx = Ctx::new(cli.global)?;
    match &cli.command {
        Command::Device(c) => mgmt::device(&ctx, c),
        Command::App(c) => mgmt::app(&ctx, c),
        Command::Pin(c) => mgmt::pin(&ctx, c),
        Command::Container(c) => mgmt::container(&ctx, c),
        Command::Key(c) => keys::key(&ctx, c),
        Command::Cert(c) => keys::cert_cmd(&ctx, c),
        Command::File(c) => ops::file(&ctx, c),
        Command::Sign(a) => ops::sign(&ctx, a),
        Command::Verify(a) => ops::verify(&ctx, a),
        Command::Encrypt(a) => ops::encrypt(&ctx, a),
        Command::Decrypt(a) => ops::decrypt(&ctx, a),
        Command::Bind(c) => bind::bind(&ctx, c),
        Command::Envelope(c) => envelope::envelope(&ctx, c),
        Command::Log(c) => envelope::log(&ctx, c),
        Command::Demo(a) => demo::demo(&ctx, a),
        Command::Sim(a) => sim::sim(&ctx, a),
        Command::Config => mgmt::config(&ctx),
        Command::Csr(a) => csr::csr(&ctx, a),
        Command::Seal(c) => seal::seal(&ctx, c),
        Command::Agent(a) => agent::agent(&ctx, a),
        Command::Softhsm { .. } => Ok(()),
    }
}
