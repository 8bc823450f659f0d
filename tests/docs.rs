//! Docs that run. Every shell block (```sh, ```bash) of README.md, docs/*.md and the folders'
//! READMEs is either run here, in order, against a real `zengine dev` started the way the
//! README's tour starts it (`ZENGINE_API__ADMIN_TOKEN=secret make run`: API on :8080, Temporal
//! on :7233, its UI on :8233), or preceded by `<!-- example: <why it is not run> -->` naming
//! what it needs (an outside system, a value only the reader has, an hour of CPU). Any other
//! block runs, so a new block is checked unless its author says why it cannot be; a block that
//! fails as written fails the test, and so does an example without its reason.
//!
//! A block runs as one bash script (`set -euo pipefail`, from the repository root, with
//! `zengine` and `.tools/bin` on `PATH`). `curl` is checked too: it must reach the server and
//! get a 2xx, or the status the command's trailing comment names (`curl … # 404 unknown_tenant`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One fenced shell block of a Markdown file.
struct Block {
    file: String,
    line: usize,
    body: String,
    /// The reason of a preceding `<!-- example: … -->`.
    example: Option<String>,
}

/// The Markdown files, README.md first (its tour makes the conversation later docs inspect).
fn doc_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut readmes: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().join("README.md"))
        .filter(|p| p.exists())
        .collect();
    readmes.sort();
    files.extend(readmes);
    files
}

fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap();
    let file = path.strip_prefix(repo()).unwrap().display().to_string();
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut previous = "";
    while let Some((i, line)) = lines.next() {
        let fence = line.trim_start();
        let lang = fence.strip_prefix("```").map(str::trim);
        if lang.is_some_and(|l| matches!(l, "sh" | "bash" | "shell" | "console")) {
            let mut body = String::new();
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            let example = previous
                .trim()
                .strip_prefix("<!-- example:")
                .and_then(|r| r.strip_suffix("-->"))
                .map(|r| r.trim().to_owned());
            out.push(Block {
                file: file.clone(),
                line: i + 1,
                body,
                example,
            });
        } else if fence.starts_with("```") {
            // Another language's block: skip it whole.
            for (_, l) in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    out
}

/// The block as a script: continuation lines joined, and a `curl` whose trailing comment
/// names a status (`# 404 …`) told to expect it.
fn script(body: &str) -> String {
    let mut logical: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in body.lines() {
        current.push_str(line);
        if let Some(stripped) = current.strip_suffix('\\') {
            current = format!("{stripped}\\\n");
            continue;
        }
        logical.push(std::mem::take(&mut current));
    }
    if !current.is_empty() {
        logical.push(current);
    }
    logical
        .into_iter()
        .map(|command| {
            let trimmed = command.trim_start();
            if trimmed.starts_with('#') || !trimmed.contains("curl") {
                return command;
            }
            let status = command.rsplit_once(" # ").and_then(|(_, comment)| {
                let code = comment.trim().get(..3)?;
                code.chars()
                    .all(|c| c.is_ascii_digit())
                    .then(|| code.to_owned())
            });
            match status {
                Some(code) => format!("EXPECT={code} {command}"),
                None => command,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const PRELUDE: &str = r#"set -euo pipefail
curl() {
  local body code want
  body=$(mktemp)
  if ! code=$(command curl -o "$body" -w '%{http_code}' "$@"); then
    echo "curl could not complete: curl $*" >&2; rm -f "$body"; return 1
  fi
  cat "$body"; echo; rm -f "$body"
  want="${EXPECT:-2xx}"
  if { [ "$want" = 2xx ] && [ "${code#2}" = "$code" ]; } || { [ "$want" != 2xx ] && [ "$code" != "$want" ]; }; then
    echo "HTTP $code where the docs expect $want: curl $*" >&2; return 1
  fi
}
"#;

fn port_taken(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// `zengine dev` on its default ports with the README's admin token, its data in `dir`.
struct Dev {
    child: std::process::Child,
    log: PathBuf,
}

impl Dev {
    fn start(dir: &Path) -> Dev {
        for port in [8080, 7233, 8233] {
            assert!(
                !port_taken(port),
                "port {port} is taken: the docs name zengine dev's default ports (stop `make run`)"
            );
        }
        let log = dir.join("dev.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .arg("dev")
            .current_dir(dir)
            .env_remove("TEMPORAL_ADDRESS")
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .env("ZENGINE_API__ADMIN_TOKEN", "secret")
            .env(
                "ZENGINE_DEV_SERVER__BINARY",
                repo().join(".tools/bin/temporal"),
            )
            .env("ZENGINE_API__CONSOLE__DIR", repo().join("console/dist"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut dev = Dev { child, log };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = Command::new(env!("CARGO_BIN_EXE_zengine"))
                .args(["probe", "http://127.0.0.1:8080/readyz"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return dev;
            }
            if let Ok(Some(status)) = dev.child.try_wait() {
                panic!("zengine dev exited ({status}):\n{}", dev.log());
            }
            assert!(
                Instant::now() < deadline,
                "zengine dev not ready:\n{}",
                dev.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

#[test]
fn every_shell_block_in_the_docs_runs_as_written_or_says_why_not() {
    let all: Vec<Block> = doc_files().iter().flat_map(|f| blocks(f)).collect();
    assert!(all.len() > 20, "found {} blocks", all.len());
    let unmarked: Vec<String> = all
        .iter()
        .filter(|b| b.example.as_deref() == Some(""))
        .map(|b| format!("{}:{} (an example needs its reason)", b.file, b.line))
        .collect();
    assert!(unmarked.is_empty(), "{unmarked:#?}");
    let runnable: Vec<&Block> = all.iter().filter(|b| b.example.is_none()).collect();
    assert!(runnable.len() >= 8, "{} blocks run", runnable.len());

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_zengine"), bin.join("zengine")).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        repo().join(".tools/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let data = dir.path().join("dev");
    std::fs::create_dir_all(&data).unwrap();
    let dev = Dev::start(&data);
    // `zengine dev` gives the tenants it finds (the seeded demo) their payload key at start-up
    // (docs/security.md, "Erasing a tenant"): erasure works for every tenant.
    let demo_key = data.join("data/tenant-secrets/demo/payload-key");
    assert!(demo_key.is_file(), "{} is missing", demo_key.display());
    let mut failures = Vec::new();
    for block in runnable {
        let output = Command::new("bash")
            .arg("-c")
            .arg(format!("{PRELUDE}{}", script(&block.body)))
            .current_dir(repo())
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !output.status.success() {
            failures.push(format!(
                "{}:{} failed ({}):\n{}\n--- stdout\n{}\n--- stderr\n{}",
                block.file,
                block.line,
                output.status,
                block.body,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} block(s) fail as written:\n\n{}\n\nzengine dev's log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        dev.log()
    );
}
