//! Test support (feature `test-support`): one real Temporal dev server per test binary.
//!
//! The server is the project-local `temporal` binary (`make tools` installs it; override with
//! `ZENGINE_TEMPORAL_BIN`), on a free port, in memory, headless. It is started on first use and
//! dies with the test process (parent-death signal). Tests isolate themselves with their own
//! task-queue prefix and ids rather than their own server.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::devserver::{DevServer, DevServerSettings, free_port};

/// The `temporal` CLI binary tests use.
pub fn temporal_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ZENGINE_TEMPORAL_BIN") {
        return PathBuf::from(path);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workers/ has a parent")
        .to_path_buf();
    root.join(".tools/bin/temporal")
}

/// Settings for a throwaway dev server: free port, in memory, headless, no log.
pub fn ephemeral_settings() -> DevServerSettings {
    DevServerSettings {
        binary: temporal_binary(),
        port: free_port(),
        ui_port: None,
        db_file: None,
        log_file: None,
        ..DevServerSettings::default()
    }
}

/// Address (`127.0.0.1:port`) of this test binary's dev server, started on first call.
pub fn shared_dev_server() -> &'static str {
    // Only the address is kept: the server lives until the test process exits.
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(|| {
        let server = DevServer::start(&ephemeral_settings())
            .expect("the Temporal dev server starts (run `make tools` first)");
        server
            .wait_ready(Duration::from_secs(60))
            .expect("the Temporal dev server becomes ready");
        server.address().to_owned()
    })
}

/// A unique task-queue prefix for one test.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "test-{test}-{}-",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
