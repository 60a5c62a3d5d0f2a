//! `apppw-web [--config FILE] [--config-web FILE] [--check]`: the self-service web server.
#![forbid(unsafe_code)]

use apppw_web::app::{App, Pam};
use apppw_web::audit::PROG;
use apppw_web::i18n::Catalogue;
use apppw_web::webconfig::{DEFAULT_PATH, SignIn, WebConfig};
use apppw_web::{routes, server};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Self-service web page for apppw: users create, see and delete their own app passwords.
#[derive(Parser)]
#[command(name = "apppw-web", version)]
struct Args {
    /// The apppw config (database, campus networks); default: $APPPW_CONFIG, then
    /// /etc/apppw/apppw.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The web server's own settings.
    #[arg(long = "config-web", value_name = "FILE", default_value = DEFAULT_PATH)]
    config_web: PathBuf,
    /// Check both config files (and the texts and the database directory) and exit.
    #[arg(long)]
    check: bool,
    /// Create the database if it does not exist, and exit. Run as root (the package's
    /// postinst does): a database created by the service's own user would be refused by the
    /// PAM module and the checkpassword backend, which trust only root's files.
    #[arg(long, conflicts_with = "check")]
    init_database: bool,
}

fn main() -> ExitCode {
    apppw::store::enable_postgres_tls();
    let args = Args::parse();
    // The page decides who may create and delete app passwords: its config must pass the same
    // trust rule as the checkpassword backend's (SPEC "Trust").
    let config = match apppw::Config::load_trusted(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if args.init_database {
        return match apppw::store::Store::open_for_admin(&config.database) {
            Ok(_) => {
                println!("{PROG}: database {} is ready", config.database);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        };
    }
    let web = match WebConfig::load(&args.config_web) {
        Ok(w) => w,
        Err(e) => return fail(&e.to_string()),
    };
    let catalogue = match Catalogue::load(web.site.locales.as_deref(), &web.site.default_language) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{}: texts: {e}", web.path.display())),
    };
    if let Some(dir) = config
        .database
        .sqlite_path()
        .and_then(std::path::Path::parent)
        .filter(|d| !d.as_os_str().is_empty() && !d.is_dir())
    {
        return fail(&format!(
            "{}: the directory {} of `database` does not exist (the package creates \
             /var/lib/apppw; create it with the apppw group, mode 2770)",
            config.path.display(),
            dir.display()
        ));
    }
    let mode = match &web.signin {
        SignIn::Header { header, .. } => format!("header {header} from the proxy"),
        SignIn::Pam {
            service,
            campus_only,
        } => format!(
            "PAM service {service}{}",
            if *campus_only { ", campus only" } else { "" }
        ),
    };
    let languages: Vec<String> = catalogue
        .languages()
        .iter()
        .map(|l| l.id.to_string())
        .collect();
    if args.check {
        println!(
            "{PROG}: {} and {} are valid; listen {}, sign-in: {mode}, languages: {}, time zone: {}",
            config.path.display(),
            web.path.display(),
            web.listen,
            languages.join(", "),
            web.site.timezone_name,
        );
        return ExitCode::SUCCESS;
    }
    if !web.session.secure_cookie {
        eprintln!("{PROG}: warning: secure_cookie = false; only for tests over plain HTTP");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // PAM, SQLite and Argon2 run here: bounded, so a flood waits instead of exhausting memory.
        .max_blocking_threads(32)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    runtime.block_on(async move {
        let (listener, activated) = match server::listen(&web) {
            Ok(l) => l,
            Err(e) => return fail(&e),
        };
        eprintln!(
            "{PROG}: listening on {listener}{} (sign-in: {mode}; languages: {})",
            if activated { ", passed by systemd" } else { "" },
            languages.join(", ")
        );
        let app = Arc::new(App::new(config, web, catalogue, Box::new(Pam)));
        server::serve(listener, routes::router(app), shutdown()).await;
        eprintln!("{PROG}: stopped");
        ExitCode::SUCCESS
    })
}

/// SIGTERM (systemd) or SIGINT.
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{PROG}: {message}");
    ExitCode::from(1)
}
