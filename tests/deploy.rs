//! `deploy/` is checked, not just written: every manifest parses, has the fields its kind needs,
//! references only what exists, and every ZEngine setting it passes is accepted by the binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;
use zengine_workers::devserver::free_port;
use zengine_workers::testing::shared_dev_server;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for key in path {
        cur = cur.get(*key)?;
    }
    cur.as_str()
}

/// `zengine config` with exactly these variables must accept them.
fn assert_settings_accepted(env: &[(String, String)], origin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zengine"));
    cmd.current_dir(dir.path())
        .arg("config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{origin}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_are_complete_and_consistent() {
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(deploy().join("k8s")).unwrap() {
        let path = entry.unwrap().path();
        for doc in documents(&path) {
            docs.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                doc,
            ));
        }
    }
    let mut config_maps = BTreeSet::new();
    let mut deployments = BTreeSet::new();
    for (file, doc) in &docs {
        let kind =
            str_at(doc, &["kind"]).unwrap_or_else(|| panic!("{file}: a document without kind"));
        assert!(
            str_at(doc, &["apiVersion"]).is_some(),
            "{file}: {kind} without apiVersion"
        );
        let name = str_at(doc, &["metadata", "name"])
            .unwrap_or_else(|| panic!("{file}: {kind} without name"));
        match kind {
            "ConfigMap" => {
                config_maps.insert(name.to_owned());
            }
            "Deployment" | "Job" => {
                if kind == "Deployment" {
                    deployments.insert(name.to_owned());
                    let selector = &doc["spec"]["selector"]["matchLabels"];
                    let labels = &doc["spec"]["template"]["metadata"]["labels"];
                    for (k, v) in selector.as_mapping().expect("selector labels") {
                        assert_eq!(
                            labels.get(k),
                            Some(v),
                            "{file}: {name}: selector must match the pod labels"
                        );
                    }
                }
                let containers = doc["spec"]["template"]["spec"]["containers"]
                    .as_sequence()
                    .expect("containers");
                for c in containers {
                    assert!(
                        str_at(c, &["image"]).is_some_and(|i| i.contains(':')),
                        "{file}: {name}: pinned image"
                    );
                    assert!(
                        c["resources"]["requests"].is_mapping(),
                        "{file}: {name}: resource requests"
                    );
                    assert!(
                        c["resources"]["limits"]["memory"].is_string(),
                        "{file}: {name}: memory limit"
                    );
                    let args: Vec<&str> = c["args"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    assert!(
                        ["api", "worker", "migrate"].contains(&args[0]),
                        "{file}: {name}: runs a zengine role"
                    );
                    if args[0] == "worker" {
                        let queue = args[2];
                        assert!(
                            zengine_workflows::names::queues::ALL.contains(&queue),
                            "{file}: {name}: queue {queue}"
                        );
                    }
                }
            }
            "Service" | "PodDisruptionBudget" | "ScaledObject" => {}
            other => panic!("{file}: unexpected kind {other}"),
        }
    }
    // Every reference resolves.
    for (file, doc) in &docs {
        for c in doc["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            for source in c["envFrom"].as_sequence().into_iter().flatten() {
                if let Some(cm) = str_at(source, &["configMapRef", "name"]) {
                    assert!(config_maps.contains(cm), "{file}: missing ConfigMap {cm}");
                }
            }
        }
        if str_at(doc, &["kind"]) == Some("ScaledObject") {
            let target = str_at(doc, &["spec", "scaleTargetRef", "name"]).unwrap();
            assert!(
                deployments.contains(target),
                "{file}: ScaledObject targets missing {target}"
            );
            assert_eq!(
                str_at(&doc["spec"]["triggers"][0], &["type"]),
                Some("temporal")
            );
        }
    }
    // KEDA owns the scale of the Deployments it targets: a `replicas` there would reset it on
    // every apply.
    let scaled: BTreeSet<&str> = docs
        .iter()
        .filter(|(_, d)| str_at(d, &["kind"]) == Some("ScaledObject"))
        .filter_map(|(_, d)| str_at(d, &["spec", "scaleTargetRef", "name"]))
        .collect();
    for (file, doc) in &docs {
        let name = str_at(doc, &["metadata", "name"]).unwrap_or_default();
        if str_at(doc, &["kind"]) == Some("Deployment") && scaled.contains(name) {
            assert!(
                doc["spec"].get("replicas").is_none(),
                "{file}: {name} is scaled by KEDA and must not set replicas"
            );
        }
    }
    // Every pod runs as the image's non-root user, without privilege escalation or capabilities.
    for (file, doc) in &docs {
        let Some(containers) = doc["spec"]["template"]["spec"]["containers"].as_sequence() else {
            continue;
        };
        let name = str_at(doc, &["metadata", "name"]).unwrap_or_default();
        let pod = &doc["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(pod["runAsNonRoot"].as_bool(), Some(true), "{file}: {name}");
        assert_eq!(
            pod["runAsUser"].as_u64(),
            Some(10001),
            "{file}: {name}: the image's USER"
        );
        for c in containers {
            let sc = &c["securityContext"];
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{file}: {name}"
            );
            assert_eq!(
                sc["capabilities"]["drop"][0].as_str(),
                Some("ALL"),
                "{file}: {name}"
            );
        }
    }
    assert!(deployments.contains("zengine-api"));
    assert!(deployments.iter().any(|d| d.starts_with("zengine-worker-")));

    // The ConfigMap's settings are real settings.
    let config = docs
        .iter()
        .find(|(_, d)| str_at(d, &["kind"]) == Some("ConfigMap"))
        .unwrap();
    let env: Vec<(String, String)> = config.1["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_settings_accepted(&env, "k8s/config.yaml");
}

/// The image's `ENV` (deploy/Dockerfile's runtime stage).
fn image_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    text.split("\nENV ")
        .nth(1)
        .unwrap()
        .split("\nEXPOSE")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|t| *t != "\\")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn the_dockerfile_is_multi_stage_with_a_slim_non_root_runtime() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 3, "console, build, runtime: {stages:?}");
    assert!(stages[2].contains("slim"));
    assert!(text.contains("libtesseract5"));
    assert!(text.contains("COPY --from=console /console/dist /usr/share/zengine/console"));
    assert!(
        text.contains("WORKDIR /var/lib/zengine"),
        "a writable working directory"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root"))
    );
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/zengine\"]"));
    let env = image_env();
    assert!(env.len() >= 4, "{env:?}");
    assert_settings_accepted(&env, "Dockerfile ENV");
    let ignore = std::fs::read_to_string(deploy().join("../.dockerignore")).unwrap();
    for path in ["target", ".tools", "deploy/secrets", "**/node_modules"] {
        assert!(ignore.lines().any(|l| l == path), ".dockerignore: {path}");
    }
}

/// A process of the parity test, killed when dropped.
struct Proc {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "{} stopped with {status}:\n{}",
                    self.name,
                    self.log()
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{} did not stop on SIGTERM:\n{}", self.name, self.log());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `deploy/compose.yaml` gives one ZEngine service, made runnable on this machine.
struct ComposeService {
    command: Vec<String>,
    env: Vec<(String, String)>,
    healthcheck: Option<Vec<String>>,
}

/// The local stand-ins of compose's network: container paths → files in `root` (secrets under
/// `/run/secrets/<name>`, configs at their `target`, the image's console), host names → the
/// local PostgreSQL (database `db`) and Temporal dev server, container ports → free local ports.
struct Mapping {
    replacements: Vec<(String, String)>,
}

impl Mapping {
    fn apply(&self, value: &str) -> String {
        self.replacements
            .iter()
            .fold(value.to_owned(), |v, (from, to)| v.replace(from, to))
    }
}

fn psql(db: &str, user: &str, args: &[&str]) {
    let output = Command::new("psql")
        .arg(format!("postgres://{user}@127.0.0.1:5432/{db}"))
        .args(["-v", "ON_ERROR_STOP=1", "-q"])
        .args(args)
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs compose's `service` as a real process: its command, exactly its environment (the
/// image's `ENV`, then the service's `environment`, nothing inherited), mapped to this machine.
fn compose_service(doc: &Value, service: &str, mapping: &Mapping) -> ComposeService {
    let spec = &doc["services"][service];
    let list = |v: &Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let mut env = image_env();
    if let Some(vars) = spec["environment"].as_mapping() {
        for (k, v) in vars {
            let (k, v) = (k.as_str().unwrap(), v.as_str().unwrap());
            env.retain(|(name, _)| name != k);
            env.push((k.to_owned(), v.to_owned()));
        }
    }
    let env = env
        .into_iter()
        .map(|(k, v)| (k, mapping.apply(&v)))
        .collect();
    let healthcheck = spec["healthcheck"]["test"].as_sequence().map(|_| {
        let test = list(&spec["healthcheck"]["test"]);
        assert_eq!(test[0], "CMD", "{service}: an exec-form healthcheck");
        test[1..].iter().map(|a| mapping.apply(a)).collect()
    });
    ComposeService {
        command: list(&spec["command"]),
        env,
        healthcheck,
    }
}

fn spawn(name: &str, service: &ComposeService, extra_env: &[(&str, String)], dir: &Path) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_zengine"))
        .args(&service.command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(service.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir.join("var/lib/zengine"))
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Proc {
        name: name.to_owned(),
        child,
        log,
    }
}

/// Runs a compose healthcheck until it passes (or panics with the service's log).
fn wait_healthy(check: &[String], proc: &Proc, within: std::time::Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = Command::new(&check[0])
            .args(&check[1..])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if status.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never became healthy ({check:?}):\n{}",
            proc.name,
            proc.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// The deploy-parity test: compose's ZEngine services (`migrate`, `api`, two `worker` replicas)
/// run as real processes with exactly the environment, files and secrets `deploy/compose.yaml`
/// and the image give them: the secrets that `deploy/gen-secrets.sh` writes, the config file
/// compose mounts, the image's `ENV` and working directory. Compose's network is mapped to
/// this machine: `postgresql` → the local PostgreSQL (a fresh database, the roles of
/// `deploy/postgres-init/`), `temporal` → a local Temporal dev server (the Temporal images
/// cannot run here: no container engine), container ports → free local ports. Migrations
/// apply, `check-config` passes, both healthchecks pass, the console is served, a webchat turn
/// is answered, and a signed WhatsApp webhook is taken by the workers (its reply dead-letters:
/// the demo number has no access token). A deploy file that cannot start fails this test.
#[tokio::test(flavor = "multi_thread")]
async fn the_compose_services_start_as_written() {
    let doc = documents(&deploy().join("compose.yaml")).remove(0);
    let services = doc["services"].as_mapping().unwrap();
    for name in [
        "postgresql",
        "temporal-admin-tools",
        "temporal",
        "temporal-create-namespace",
        "temporal-ui",
        "migrate",
        "api",
        "worker",
    ] {
        assert!(services.contains_key(name), "compose service {name}");
    }
    assert!(
        !services
            .iter()
            .any(|(_, s)| str_at(s, &["image"]).is_some_and(|i| i.contains("auto-setup"))),
        "temporalio/auto-setup is deprecated"
    );
    for name in [
        "temporal",
        "temporal-admin-tools",
        "temporal-create-namespace",
    ] {
        let image = str_at(&doc["services"][name], &["image"]).unwrap();
        assert!(image.ends_with(":1.32.0"), "{name}: {image}");
    }
    let codec = str_at(
        &doc["services"]["temporal-ui"]["environment"],
        &["TEMPORAL_CODEC_ENDPOINT"],
    )
    .unwrap();
    assert!(
        codec.starts_with("http://localhost:8080/"),
        "the browser calls the codec: {codec}"
    );

    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("var/lib/zengine")).unwrap();
    // Secrets: what the documented generator writes, where compose mounts them.
    let secrets = root.join("run/secrets");
    let generated = Command::new("sh")
        .arg(deploy().join("gen-secrets.sh"))
        .arg(&secrets)
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let db = format!("zparity_{}", uuid::Uuid::new_v4().simple());
    let api_port = free_port();
    let mut replacements: Vec<(String, String)> = Vec::new();
    for (name, secret) in doc["secrets"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let source = str_at(secret, &["file"]).unwrap();
        assert_eq!(source, format!("./secrets/{name}"));
        assert!(secrets.join(name).exists(), "gen-secrets.sh writes {name}");
        replacements.push((
            format!("/run/secrets/{name}"),
            secrets.join(name).display().to_string(),
        ));
    }
    let network = [
        (
            "@postgresql:5432/zengine".to_owned(),
            format!("@127.0.0.1:5432/{db}"),
        ),
        ("temporal:7233".to_owned(), shared_dev_server().to_owned()),
        ("0.0.0.0:8080".to_owned(), format!("127.0.0.1:{api_port}")),
        ("127.0.0.1:8080".to_owned(), format!("127.0.0.1:{api_port}")),
        (
            "/usr/share/zengine/console".to_owned(),
            deploy().join("../console/dist").display().to_string(),
        ),
        (
            "/usr/local/bin/zengine".to_owned(),
            env!("CARGO_BIN_EXE_zengine").to_owned(),
        ),
    ];
    replacements.extend(network);
    // Configs: the mounted file, with the container paths it names mapped too.
    for (name, config) in doc["configs"].as_mapping().unwrap() {
        let source = deploy().join(str_at(config, &["file"]).unwrap());
        let text = Mapping {
            replacements: replacements.clone(),
        }
        .apply(&std::fs::read_to_string(source).unwrap());
        let host = root.join(format!("config-{}", name.as_str().unwrap()));
        std::fs::write(&host, text).unwrap();
        for service in ["migrate", "api", "worker"] {
            for mount in doc["services"][service]["configs"].as_sequence().unwrap() {
                if mount["source"] == *name {
                    let target = mount["target"].as_str().unwrap().to_owned();
                    let host = host.display().to_string();
                    if !replacements.iter().any(|(t, _)| *t == target) {
                        replacements.push((target, host));
                    }
                }
            }
        }
    }
    let mapping = Mapping { replacements };
    let secret = |name: &str| {
        std::fs::read_to_string(secrets.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };

    // The database as the postgres image's first start leaves it: POSTGRES_USER (a superuser)
    // owning POSTGRES_DB, then every init script run in it.
    psql(
        "postgres",
        "postgres",
        &[
            "-c",
            "do $$ begin if not exists (select 1 from pg_roles where rolname = 'zengine') then \
             create role zengine login superuser password 'zengine'; end if; end $$",
            "-c",
            &format!("create database {db} owner zengine"),
        ],
    );
    let mut init: Vec<PathBuf> = std::fs::read_dir(deploy().join("postgres-init"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    init.sort();
    for script in &init {
        psql(&db, "zengine", &["-f", script.to_str().unwrap()]);
    }

    // migrate: runs to completion.
    let migrate = compose_service(&doc, "migrate", &mapping);
    let mut run = spawn("migrate", &migrate, &[], root);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "migrate failed:\n{}", run.log());

    // check-config passes for both roles with the api's and the worker's settings.
    let api = compose_service(&doc, "api", &mapping);
    let worker = compose_service(&doc, "worker", &mapping);
    for (role, service) in [("api", &api), ("worker", &worker)] {
        let output = Command::new(env!("CARGO_BIN_EXE_zengine"))
            .args(["check-config", "--role", role])
            .env_clear()
            .envs(service.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(root.join("var/lib/zengine"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "check-config --role {role}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The API and two worker replicas (each its own ports, as containers would have).
    let api_proc = spawn("api", &api, &[], root);
    let mut workers = Vec::new();
    for replica in 1..=2 {
        let health = free_port();
        let env = [
            ("ZENGINE_WORKER__HEALTH_ADDR", format!("127.0.0.1:{health}")),
            (
                "ZENGINE_WORKER__METRICS_ADDR",
                format!("127.0.0.1:{}", free_port()),
            ),
        ];
        let proc = spawn(&format!("worker-{replica}"), &worker, &env, root);
        let check: Vec<String> = worker
            .healthcheck
            .clone()
            .unwrap()
            .into_iter()
            .map(|a| a.replace("127.0.0.1:9465", &format!("127.0.0.1:{health}")))
            .collect();
        workers.push((proc, check));
    }
    let timeout = std::time::Duration::from_secs(90);
    wait_healthy(api.healthcheck.as_ref().unwrap(), &api_proc, timeout);
    for (proc, check) in &workers {
        wait_healthy(check, proc, timeout);
    }

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api_port}");
    // The console is in the image.
    let console = http.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(console.status(), 200, "{}", api_proc.log());

    // A webchat turn.
    let reply = http
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", "demo")
        .header("x-idempotency-key", "parity-1")
        .json(&serde_json::json!({"session_id": "parity", "text": "hola"}))
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body["replies"].as_array().unwrap().is_empty(), "{body}");

    // A signed WhatsApp webhook, taken by the workers: its reply dead-letters (no access token
    // for the demo number), which only a worker that ran the conversation can record.
    let webhook = serde_json::json!({"object": "whatsapp_business_account", "entry": [{
        "id": "waba-parity", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111",
                         "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "51911122233"}],
            "messages": [{"from": "51911122233", "id": "wamid.parity-1",
                          "timestamp": "1765000000", "type": "text",
                          "text": {"body": "hola"}}]}}]}]})
    .to_string();
    let signature = {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(secret("whatsapp_app_secret").as_bytes()).unwrap();
        mac.update(webhook.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let response = http
        .post(format!("{base}/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", api_proc.log());
    let admin = secret("admin_token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let dead: serde_json::Value = http
            .get(format!("{base}/v1/channels/dead-letters"))
            .bearer_auth(&admin)
            .header("x-tenant-id", "demo")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let letters = dead["dead_letters"].as_array().cloned().unwrap_or_default();
        if letters
            .iter()
            .any(|l| l["recipient"] == "51911122233" && l["strategy"] == "whatsapp-meta-cloud")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker took the WhatsApp message: {dead}\n{}",
            workers[0].0.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    api_proc.stop();
    for (proc, _) in workers {
        proc.stop();
    }
    psql(
        "postgres",
        "postgres",
        &["-c", &format!("drop database {db} with (force)")],
    );
}
