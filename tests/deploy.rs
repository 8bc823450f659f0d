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

/// The manifests of a kustomize overlay, rendered by `kubectl kustomize`.
fn rendered(overlay: &str) -> Vec<Value> {
    let output = Command::new("kubectl")
        .args(["kustomize"])
        .arg(deploy().join("k8s/overlays").join(overlay))
        .output()
        .expect("kubectl runs (it renders kustomize overlays)");
    assert!(
        output.status.success(),
        "kubectl kustomize {overlay}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Secrets the manifests reference, which the operator creates (k8s/base/config.yaml says how).
const OPERATOR_SECRETS: [&str; 3] = ["zengine-secrets", "zengine-database", "zengine-migration"];

fn pod_spec(doc: &Value) -> Option<&Value> {
    let spec = &doc["spec"]["template"]["spec"];
    spec["containers"].is_sequence().then_some(spec)
}

#[test]
fn kubernetes_manifests_are_complete_and_consistent() {
    for overlay in ["production", "single-node"] {
        check_overlay(overlay, &rendered(overlay));
    }
}

fn check_overlay(overlay: &str, docs: &[Value]) {
    let kinds: Vec<(&str, &str)> = docs
        .iter()
        .map(|d| {
            (
                str_at(d, &["kind"])
                    .unwrap_or_else(|| panic!("{overlay}: a document without kind")),
                str_at(d, &["metadata", "name"]).unwrap_or_else(|| panic!("{overlay}: no name")),
            )
        })
        .collect();
    let names_of = |kind: &str| -> BTreeSet<&str> {
        kinds
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
            .collect()
    };
    let (config_maps, deployments) = (names_of("ConfigMap"), names_of("Deployment"));
    for doc in docs {
        let kind = str_at(doc, &["kind"]).unwrap();
        let name = str_at(doc, &["metadata", "name"]).unwrap();
        assert!(
            str_at(doc, &["apiVersion"]).is_some(),
            "{overlay}: {kind} {name}"
        );
        assert_eq!(
            str_at(doc, &["metadata", "namespace"]),
            Some("zengine"),
            "{overlay}: {kind} {name}"
        );
        match kind {
            "ConfigMap"
            | "Deployment"
            | "Job"
            | "Service"
            | "PodDisruptionBudget"
            | "ScaledObject"
            | "NetworkPolicy" => {}
            other => panic!("{overlay}: unexpected kind {other}"),
        }
        if kind == "Deployment" {
            let selector = &doc["spec"]["selector"]["matchLabels"];
            let labels = &doc["spec"]["template"]["metadata"]["labels"];
            for (k, v) in selector.as_mapping().expect("selector labels") {
                assert_eq!(
                    labels.get(k),
                    Some(v),
                    "{overlay}: {name}: selector ⊆ pod labels"
                );
            }
            let spread = doc["spec"]["template"]["spec"]["topologySpreadConstraints"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{overlay}: {name}: topology spread"));
            assert!(
                spread
                    .iter()
                    .all(|c| c["labelSelector"]["matchLabels"] == *selector)
            );
        }
        let Some(pod) = pod_spec(doc) else { continue };
        // Non-root (the image's user), no privilege escalation, no capabilities, read-only root.
        let security = &pod["securityContext"];
        assert_eq!(
            security["runAsNonRoot"].as_bool(),
            Some(true),
            "{overlay}: {name}"
        );
        assert_eq!(
            security["runAsUser"].as_u64(),
            Some(10001),
            "{overlay}: {name}"
        );
        let volumes = pod["volumes"].as_sequence().cloned().unwrap_or_default();
        for volume in &volumes {
            if let Some(cm) = str_at(volume, &["configMap", "name"]) {
                assert!(
                    config_maps.contains(cm),
                    "{overlay}: {name}: ConfigMap {cm}"
                );
            }
            if let Some(secret) = str_at(volume, &["secret", "secretName"]) {
                assert!(
                    OPERATOR_SECRETS.contains(&secret),
                    "{overlay}: {name}: {secret}"
                );
            }
        }
        for c in pod["containers"].as_sequence().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{overlay}: {name}"
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{overlay}: {name}"
            );
            assert_eq!(
                sc["capabilities"]["drop"][0].as_str(),
                Some("ALL"),
                "{overlay}: {name}"
            );
            // What the process writes has a volume: its working directory and /tmp.
            let mounts: Vec<&str> = c["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|m| str_at(m, &["mountPath"]))
                .collect();
            for path in [
                "/var/lib/zengine",
                "/tmp",
                "/etc/zengine",
                "/run/secrets/zengine",
            ] {
                assert!(
                    mounts.contains(&path),
                    "{overlay}: {name}: a volume at {path}"
                );
            }
            let image = str_at(c, &["image"]).unwrap();
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap();
            assert!(
                !tag.is_empty() && tag != "latest",
                "{overlay}: {name}: pinned image"
            );
            assert!(
                c["resources"]["requests"].is_mapping(),
                "{overlay}: {name}: requests"
            );
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{overlay}: {name}"
            );
            for source in c["envFrom"].as_sequence().into_iter().flatten() {
                if let Some(cm) = str_at(source, &["configMapRef", "name"]) {
                    assert!(
                        config_maps.contains(cm),
                        "{overlay}: {name}: ConfigMap {cm}"
                    );
                }
                if let Some(secret) = str_at(source, &["secretRef", "name"]) {
                    assert!(
                        OPERATOR_SECRETS.contains(&secret),
                        "{overlay}: {name}: {secret}"
                    );
                }
            }
            let args: Vec<&str> = c["args"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            match args[0] {
                "migrate" => {
                    // A new Job per release: its name carries the image tag.
                    assert_eq!(name, format!("zengine-migrate-{tag}"), "{overlay}");
                }
                "api" => {
                    assert!(
                        c["readinessProbe"]["httpGet"].is_mapping(),
                        "{overlay}: {name}"
                    );
                }
                "worker" => {
                    let queue = args[2];
                    assert!(
                        zengine_workflows::names::queues::ALL.contains(&queue),
                        "{queue}"
                    );
                    assert_eq!(
                        str_at(c, &["readinessProbe", "httpGet", "path"]),
                        Some("/readyz")
                    );
                    assert_eq!(
                        str_at(c, &["livenessProbe", "httpGet", "path"]),
                        Some("/healthz")
                    );
                }
                other => panic!("{overlay}: {name}: runs `zengine {other}`"),
            }
        }
    }
    // KEDA owns the scale of the Deployments it targets: a `replicas` there would reset it on
    // every apply. Each ScaledObject targets a Deployment and reads the Temporal backlog.
    let scaled: BTreeSet<&str> = docs
        .iter()
        .filter(|d| str_at(d, &["kind"]) == Some("ScaledObject"))
        .map(|d| {
            assert_eq!(
                str_at(&d["spec"]["triggers"][0], &["type"]),
                Some("temporal")
            );
            str_at(d, &["spec", "scaleTargetRef", "name"]).unwrap()
        })
        .collect();
    for doc in docs {
        let name = str_at(doc, &["metadata", "name"]).unwrap();
        if str_at(doc, &["kind"]) == Some("Deployment") && scaled.contains(name) {
            assert!(
                doc["spec"].get("replicas").is_none(),
                "{overlay}: {name}: replicas"
            );
        }
    }
    assert!(
        scaled.iter().all(|t| deployments.contains(t)),
        "{overlay}: {scaled:?}"
    );
    assert!(deployments.contains("zengine-api"));
    assert!(names_of("Job").len() == 1, "{overlay}: one migration Job");
    assert!(
        names_of("NetworkPolicy").contains("zengine-default-deny"),
        "{overlay}"
    );
    if overlay == "production" {
        // Every Deployment has a disruption budget.
        let pdbs = names_of("PodDisruptionBudget");
        assert!(
            deployments.iter().all(|d| pdbs.contains(d)),
            "{overlay}: {pdbs:?}"
        );
    }
    // The settings the ConfigMap passes are real settings (the configuration file they name is
    // checked by the parity test, which mounts it).
    let config = docs
        .iter()
        .find(|d| str_at(d, &["metadata", "name"]) == Some("zengine-config"))
        .unwrap();
    let env: Vec<(String, String)> = config["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_owned(),
                v.as_str().unwrap().to_owned(),
            )
        })
        .filter(|(k, _)| k != "ZENGINE_CONFIG")
        .collect();
    assert_settings_accepted(&env, "k8s zengine-config");
}

/// The rendered manifests against the Kubernetes API schemas (kubernetes-validate, pinned in
/// scripts/install-tools.sh), strictly: an unknown or misspelt field fails. Only KEDA's
/// ScaledObject has no schema there (its fields are checked above).
#[test]
fn rendered_manifests_match_the_kubernetes_schemas() {
    let validate = deploy().join("../.tools/kubernetes-validate/bin/kubernetes-validate");
    assert!(
        validate.exists(),
        "run scripts/install-tools.sh (make tools)"
    );
    for overlay in ["production", "single-node"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rendered.yaml");
        let docs = rendered(overlay);
        let text = docs
            .iter()
            .map(|d| serde_yaml::to_string(d).unwrap())
            .collect::<Vec<_>>()
            .join("---\n");
        std::fs::write(&file, text).unwrap();
        let output = Command::new(&validate)
            .args(["--strict", "-k", "1.34.0"])
            .arg(&file)
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "{overlay}:\n{report}");
        let passed = report
            .lines()
            .filter(|l| l.contains(" passed for resource "))
            .count();
        let unknown: Vec<&str> = report
            .lines()
            .filter(|l| l.contains("Couldn't find schema") && !l.contains("kind ScaledObject"))
            .collect();
        assert!(unknown.is_empty(), "{overlay}: {unknown:?}");
        let scaled = docs
            .iter()
            .filter(|d| str_at(d, &["kind"]) == Some("ScaledObject"))
            .count();
        assert_eq!(passed + scaled, docs.len(), "{overlay}:\n{report}");
    }
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

/// One ZEngine process of a deploy file, made runnable on this machine: its arguments, its
/// whole environment (nothing is inherited) and the healthcheck that says it is ready.
struct Service {
    command: Vec<String>,
    env: Vec<(String, String)>,
    healthcheck: Option<Vec<String>>,
}

/// The local stand-ins of a deployment's network and files: container paths → files here,
/// host names → the local PostgreSQL (a fresh database) and Temporal dev server, container
/// ports → free local ports.
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

/// A fresh database as the postgres image's first start leaves it: POSTGRES_USER `zengine` (a
/// superuser) owning it, then every script of `deploy/postgres-init/` run in it (the roles
/// `zengine_app`, `zengine_runtime`, `temporal`). Dropped with the value.
struct Database {
    name: String,
}

impl Database {
    fn create() -> Self {
        let name = format!("zparity_{}", uuid::Uuid::new_v4().simple());
        psql(
            "postgres",
            "postgres",
            &[
                "-c",
                "do $$ begin if not exists (select 1 from pg_roles where rolname = 'zengine') \
                 then create role zengine login superuser password 'zengine'; end if; end $$",
                "-c",
                &format!("create database {name} owner zengine"),
            ],
        );
        let mut init: Vec<PathBuf> = std::fs::read_dir(deploy().join("postgres-init"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        init.sort();
        for script in &init {
            psql(&name, "zengine", &["-f", script.to_str().unwrap()]);
        }
        Database { name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg("postgres://postgres@127.0.0.1:5432/postgres")
            .args([
                "-q",
                "-c",
                &format!("drop database if exists {} with (force)", self.name),
            ])
            .output();
    }
}

/// Writes the secrets files `deploy/gen-secrets.sh` generates (what the docs tell operators to
/// run for compose and Kubernetes alike) into `dir`.
fn generate_secrets(dir: &Path) {
    let generated = Command::new("sh")
        .arg(deploy().join("gen-secrets.sh"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
}

fn spawn(name: &str, service: &Service, extra_env: &[(&str, String)], dir: &Path) -> Proc {
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

/// Runs a healthcheck until it passes (or panics with the service's log).
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

/// Runs `migrate` to completion and `check-config` for the api and worker roles.
fn migrate_and_check(migrate: &Service, api: &Service, worker: &Service, root: &Path) {
    let mut run = spawn("migrate", migrate, &[], root);
    let status = run.child.wait().unwrap();
    assert!(status.success(), "migrate failed:\n{}", run.log());
    for (role, service) in [("api", api), ("worker", worker)] {
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
}

/// What every deployment must do once up: serve the console, answer a webchat turn, and take a
/// signed WhatsApp webhook on a worker (its reply dead-letters: the demo number has no access
/// token, and only a worker that ran the conversation can record that).
async fn exercise(
    base: &str,
    secrets: &Path,
    tenant: &str,
    phone_number_id: &str,
    worker: &Proc,
    api: &Proc,
) {
    let secret = |name: &str| {
        std::fs::read_to_string(secrets.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let http = reqwest::Client::new();
    let console = http.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(
        console.status(),
        200,
        "the console is in the image:\n{}",
        api.log()
    );

    let reply = http
        .post(format!("{base}/v1/webchat/messages"))
        .header("x-tenant-id", tenant)
        .header("x-idempotency-key", "parity-1")
        .json(&serde_json::json!({"session_id": "parity", "text": "hola"}))
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body["replies"].as_array().unwrap().is_empty(), "{body}");

    let webhook = serde_json::json!({"object": "whatsapp_business_account", "entry": [{
        "id": "waba-parity", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111",
                         "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "51911122233"}],
            "messages": [{"from": "51911122233", "id": "wamid.parity-1",
                          "timestamp": "1765000000", "type": "text",
                          "text": {"body": "hola"}}]}}]}]})
    .to_string();
    let signature = zengine_workers::testing::whatsapp_signature(
        &secret("whatsapp_app_secret"),
        webhook.as_bytes(),
    );
    let response = http
        .post(format!("{base}/v1/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", api.log());
    let admin = secret("admin_token");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let dead: serde_json::Value = http
            .get(format!("{base}/v1/channels/dead-letters"))
            .bearer_auth(&admin)
            .header("x-tenant-id", tenant)
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
            worker.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Creates `tenant` with the example flow `flow` as its main flow and registers a WhatsApp
/// Cloud number for it (no access token: its replies dead-letter), with the admin token.
async fn onboard(base: &str, secrets: &Path, tenant: &str, flow: &str, phone_number_id: &str) {
    let admin = std::fs::read_to_string(secrets.join("admin_token")).unwrap();
    let admin = admin.trim();
    let http = reqwest::Client::new();
    let flow_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join(format!("../workflows/flows/{flow}.json"))).unwrap(),
    )
    .unwrap();
    let calls = [
        (
            reqwest::Method::POST,
            "/v1/tenants".to_owned(),
            serde_json::json!({"tenant_id": tenant, "name": tenant, "main_flow_id": flow}),
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/tenants/{tenant}/flows/{flow}"),
            flow_json,
        ),
        (
            reqwest::Method::PUT,
            format!("/v1/tenants/{tenant}/channels/whatsapp-meta-cloud"),
            serde_json::json!({"account_key": phone_number_id, "settings": {
                "api_version": "v23.0", "access_token": "env:ZENGINE_PARITY_NO_SUCH_TOKEN"}}),
        ),
    ];
    for (method, path, body) in calls {
        let response = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(admin)
            .header("x-tenant-id", tenant)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            response.text().await.unwrap()
        );
    }
}

/// compose's `service`: its command and exactly its environment (the image's `ENV`, then the
/// service's `environment`), mapped to this machine.
fn compose_service(doc: &Value, service: &str, mapping: &Mapping) -> Service {
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
    Service {
        command: list(&spec["command"]),
        env,
        healthcheck,
    }
}

/// The deploy-parity test of compose: its ZEngine services (`migrate`, `api`, two `worker`
/// replicas) run as real processes with exactly the environment, files and secrets
/// `deploy/compose.yaml` and the image give them: the secrets `deploy/gen-secrets.sh` writes,
/// the config file compose mounts, the image's `ENV` and working directory. Compose's network
/// is mapped to this machine: `postgresql` → the local PostgreSQL ([`Database`]), `temporal` →
/// a local Temporal dev server (the Temporal images cannot run here: no container engine),
/// container ports → free local ports. Migrations apply, `check-config` passes, both
/// healthchecks pass, and [`exercise`] succeeds. A deploy file that cannot start fails this.
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
    let secrets = root.join("run/secrets");
    generate_secrets(&secrets);
    let db = Database::create();
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
    replacements.extend([
        (
            "@postgresql:5432/zengine".to_owned(),
            format!("@127.0.0.1:5432/{}", db.name),
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
    ]);
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
                    if !replacements.iter().any(|(t, _)| *t == target) {
                        replacements.push((target, host.display().to_string()));
                    }
                }
            }
        }
    }
    let mapping = Mapping { replacements };
    let migrate = compose_service(&doc, "migrate", &mapping);
    let api = compose_service(&doc, "api", &mapping);
    let worker = compose_service(&doc, "worker", &mapping);
    migrate_and_check(&migrate, &api, &worker, root);

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
    // compose's migrate seeds the demo tenant (`--seed-demo`) with its WhatsApp number.
    exercise(
        &format!("http://127.0.0.1:{api_port}"),
        &secrets,
        "demo",
        "106540352242922",
        &workers[0].0,
        &api_proc,
    )
    .await;
    api_proc.stop();
    for (proc, _) in workers {
        proc.stop();
    }
}

/// A container of the rendered manifests as a process: its args; its environment from the
/// image's `ENV`, `envFrom` (ConfigMaps of the manifests, the operator's Secrets given here)
/// and `env`; its volumes as folders (ConfigMap files written out, the `zengine-secrets` files
/// generated, emptyDirs); its readiness probe as `zengine probe`.
fn k8s_service(
    docs: &[Value],
    pod: &Value,
    operator_secrets: &[(&str, Vec<(String, String)>)],
    mapping: &Mapping,
    port_map: &[(u64, u16)],
) -> Service {
    let c = &pod["containers"][0];
    let mut env = image_env();
    let mut set = |k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for source in c["envFrom"].as_sequence().into_iter().flatten() {
        if let Some(cm) = str_at(source, &["configMapRef", "name"]) {
            let doc = docs
                .iter()
                .find(|d| {
                    str_at(d, &["kind"]) == Some("ConfigMap")
                        && str_at(d, &["metadata", "name"]) == Some(cm)
                })
                .unwrap();
            for (k, v) in doc["data"].as_mapping().unwrap() {
                set(
                    k.as_str().unwrap().to_owned(),
                    v.as_str().unwrap().to_owned(),
                );
            }
        }
        if let Some(name) = str_at(source, &["secretRef", "name"]) {
            let (_, data) = operator_secrets.iter().find(|(n, _)| *n == name).unwrap();
            for (k, v) in data {
                set(k.clone(), v.clone());
            }
        }
    }
    for var in c["env"].as_sequence().into_iter().flatten() {
        set(
            str_at(var, &["name"]).unwrap().to_owned(),
            str_at(var, &["value"]).unwrap().to_owned(),
        );
    }
    let env = env
        .into_iter()
        .map(|(k, v)| (k, mapping.apply(&v)))
        .collect();
    let healthcheck = c["readinessProbe"]["httpGet"].as_mapping().map(|_| {
        let probe = &c["readinessProbe"]["httpGet"];
        let port_name = str_at(probe, &["port"]).unwrap();
        let container_port = c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| str_at(p, &["name"]) == Some(port_name))
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap();
        let (_, host) = port_map.iter().find(|(c, _)| *c == container_port).unwrap();
        vec![
            env!("CARGO_BIN_EXE_zengine").to_owned(),
            "probe".to_owned(),
            format!(
                "http://127.0.0.1:{host}{}",
                str_at(probe, &["path"]).unwrap()
            ),
        ]
    });
    Service {
        command: c["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect(),
        env,
        healthcheck,
    }
}

/// The deploy-parity test of Kubernetes: the production overlay, rendered by `kubectl
/// kustomize`, run as processes: the migration Job, the API Deployment and every worker
/// Deployment, each with exactly what its pod spec gives it (see [`k8s_service`]) and the
/// Secrets created the way `k8s/base/config.yaml` documents (`gen-secrets.sh` files as
/// `zengine-secrets`). Service names map to the local PostgreSQL and dev server, container
/// ports to free local ports; readiness probes must pass and [`exercise`] must succeed.
#[tokio::test(flavor = "multi_thread")]
async fn the_kubernetes_pods_start_as_rendered() {
    let docs = rendered("production");
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("var/lib/zengine")).unwrap();
    let secrets = root.join("zengine-secrets");
    generate_secrets(&secrets);
    let db = Database::create();
    let operator_secrets = [
        (
            "zengine-database",
            vec![(
                "DATABASE_URL".to_owned(),
                format!(
                    "postgres://zengine_runtime:zengine-runtime@127.0.0.1:5432/{}",
                    db.name
                ),
            )],
        ),
        (
            "zengine-migration",
            vec![(
                "ZENGINE_DATABASE__MIGRATION_URL".to_owned(),
                format!("postgres://zengine:zengine@127.0.0.1:5432/{}", db.name),
            )],
        ),
    ];
    let pods: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(str_at(d, &["kind"]), Some("Job" | "Deployment")))
        .collect();
    // Volumes → folders: every pod mounts the same ones (checked by the manifest test).
    let first = pod_spec(pods[0]).unwrap();
    let mut replacements = Vec::new();
    for mount in first["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
    {
        let path = str_at(mount, &["mountPath"]).unwrap();
        let volume = first["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let host = if let Some(cm) = str_at(volume, &["configMap", "name"]) {
            let dir = root.join(cm);
            std::fs::create_dir_all(&dir).unwrap();
            dir
        } else if str_at(volume, &["secret", "secretName"]) == Some("zengine-secrets") {
            secrets.clone()
        } else if path == "/var/lib/zengine" {
            root.join("var/lib/zengine")
        } else {
            continue; // /tmp
        };
        replacements.push((path.to_owned(), host.display().to_string()));
    }
    let api_port = free_port();
    replacements.extend([
        (
            "temporal-frontend.temporal.svc:7233".to_owned(),
            shared_dev_server().to_owned(),
        ),
        ("0.0.0.0:8080".to_owned(), format!("127.0.0.1:{api_port}")),
        (
            "/usr/share/zengine/console".to_owned(),
            deploy().join("../console/dist").display().to_string(),
        ),
    ]);
    let mapping = Mapping { replacements };
    // ConfigMap volumes: their files, with the container paths they name mapped.
    for volume in first["volumes"].as_sequence().unwrap() {
        if let Some(cm) = str_at(volume, &["configMap", "name"]) {
            let doc = docs
                .iter()
                .find(|d| str_at(d, &["metadata", "name"]) == Some(cm))
                .unwrap();
            for (file, text) in doc["data"].as_mapping().unwrap() {
                std::fs::write(
                    root.join(cm).join(file.as_str().unwrap()),
                    mapping.apply(text.as_str().unwrap()),
                )
                .unwrap();
            }
        }
    }
    let role = |d: &&Value| {
        pod_spec(d).unwrap()["containers"][0]["args"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let pod_of = |r: &str| {
        pods.iter()
            .find(|d| role(d) == r)
            .map(|d| pod_spec(d).unwrap())
            .unwrap()
    };
    let api_ports = [(8080, api_port)];
    let migrate = k8s_service(&docs, pod_of("migrate"), &operator_secrets, &mapping, &[]);
    let api = k8s_service(
        &docs,
        pod_of("api"),
        &operator_secrets,
        &mapping,
        &api_ports,
    );
    let any_worker = k8s_service(
        &docs,
        pod_of("worker"),
        &operator_secrets,
        &mapping,
        &[(9465, 0)],
    );
    migrate_and_check(&migrate, &api, &any_worker, root);

    let api_proc = spawn("api", &api, &[], root);
    let mut workers = Vec::new();
    for doc in pods.iter().filter(|d| role(d) == "worker") {
        let name = str_at(doc, &["metadata", "name"]).unwrap();
        let (health, metrics) = (free_port(), free_port());
        let worker = k8s_service(
            &docs,
            pod_spec(doc).unwrap(),
            &operator_secrets,
            &mapping,
            &[(9465, health)],
        );
        let env = [
            ("ZENGINE_WORKER__HEALTH_ADDR", format!("127.0.0.1:{health}")),
            (
                "ZENGINE_WORKER__METRICS_ADDR",
                format!("127.0.0.1:{metrics}"),
            ),
        ];
        let proc = spawn(name, &worker, &env, root);
        workers.push((proc, worker.healthcheck.unwrap()));
    }
    assert!(workers.len() >= 5, "one Deployment per queue");
    let timeout = std::time::Duration::from_secs(90);
    wait_healthy(api.healthcheck.as_ref().unwrap(), &api_proc, timeout);
    for (proc, check) in &workers {
        wait_healthy(check, proc, timeout);
    }
    let channels = workers
        .iter()
        .position(|(p, _)| p.name.ends_with("-channels"))
        .unwrap();
    // Production migrations seed nothing: a tenant is onboarded the way a platform admin
    // does it, through the API with the admin token.
    let base = format!("http://127.0.0.1:{api_port}");
    onboard(&base, &secrets, "acme", "barber", "109000000000001").await;
    exercise(
        &base,
        &secrets,
        "acme",
        "109000000000001",
        &workers[channels].0,
        &api_proc,
    )
    .await;
    api_proc.stop();
    for (proc, _) in workers {
        proc.stop();
    }
}
