//! `apppw-web [--config FILE] [--config-web FILE] [--check]`: the self-service web server.
#![forbid(unsafe_code)]

use apppw_web::app::{App, Pam};
use apppw_web::audit::PROG;
use apppw_web::http::{MAX_BODY, Method, Request, Response};
use apppw_web::webconfig::{DEFAULT_PATH, SignIn, WebConfig};
use clap::Parser;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use zeroize::Zeroize;

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
    /// Check both config files and exit.
    #[arg(long)]
    check: bool,
    /// Requests handled at the same time.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match apppw::Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let web = match WebConfig::load(&args.config_web) {
        Ok(w) => w,
        Err(e) => return fail(&e.to_string()),
    };
    let mode = match &web.signin {
        SignIn::Header { header, .. } => format!("header {header} from trusted proxies"),
        SignIn::Pam {
            service,
            campus_only,
        } => format!(
            "PAM service {service}{}",
            if *campus_only { ", campus only" } else { "" }
        ),
    };
    if args.check {
        println!(
            "{PROG}: {} and {} are valid; listen {}, sign-in: {mode}",
            config.path.display(),
            web.path.display(),
            web.listen
        );
        return ExitCode::SUCCESS;
    }
    if !web.listen.ip().is_loopback() {
        eprintln!(
            "{PROG}: warning: listening on {}, not a loopback address; put the reverse proxy \
             in front and firewall this port",
            web.listen
        );
    }
    if !web.session.secure_cookie {
        eprintln!("{PROG}: warning: secure_cookie = false; only for tests over plain HTTP");
    }
    let server = match tiny_http::Server::http(web.listen) {
        Ok(s) => Arc::new(s),
        Err(e) => return fail(&format!("cannot listen on {}: {e}", web.listen)),
    };
    let bound = server
        .server_addr()
        .to_ip()
        .map_or_else(|| web.listen.to_string(), |a| a.to_string());
    eprintln!("{PROG}: listening on http://{bound} (sign-in: {mode})");
    let app = Arc::new(App::new(config, web, Box::new(Pam)));

    let mut workers = Vec::new();
    for i in 0..args.threads {
        let server = Arc::clone(&server);
        let app = Arc::clone(&app);
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || serve(&server, &app));
        match spawned {
            Ok(handle) => workers.push(handle),
            Err(e) => return fail(&format!("cannot start worker threads: {e}")),
        }
    }
    for w in workers {
        let _ = w.join();
    }
    fail("all worker threads ended")
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{PROG}: {message}");
    ExitCode::from(1)
}

fn serve(server: &tiny_http::Server, app: &App) {
    loop {
        match server.recv() {
            Ok(rq) => answer(app, rq),
            Err(e) => {
                eprintln!("{PROG}: accepting a request failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn answer(app: &App, mut rq: tiny_http::Request) {
    let method = match rq.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => Method::Get,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let mut req = Request::new(method, rq.url(), rq.remote_addr().map(|a| a.ip()));
    req.headers = rq
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let read = rq
        .as_reader()
        .take(u64::try_from(MAX_BODY + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut body);
    let resp = if read.is_err() {
        Response::html(400, String::new())
    } else if body.len() > MAX_BODY {
        Response::html(413, String::new())
    } else {
        req.body = std::mem::take(&mut body);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app.handle(&req)))
            .unwrap_or_else(|_| Response::html(500, String::new()))
    };
    // The body may hold a password (sign-in form).
    req.body.zeroize();
    body.zeroize();

    let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    for (name, value) in &resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(h);
        }
    }
    let _ = rq.respond(out);
}
