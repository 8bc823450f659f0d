//! `deploy/` is checked, not just written: every manifest parses, has the fields its kind needs,
//! references only what exists, and every ZEngine setting it passes is accepted by the binary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

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

#[test]
fn the_compose_file_runs_the_production_topology() {
    let doc = documents(&deploy().join("compose.yaml")).remove(0);
    let services = doc["services"].as_mapping().unwrap();
    for name in [
        "postgresql",
        "temporal",
        "temporal-ui",
        "migrate",
        "api",
        "worker",
    ] {
        assert!(services.contains_key(name), "compose service {name}");
    }
    assert_eq!(
        doc["services"]["worker"]["deploy"]["replicas"].as_u64(),
        Some(2)
    );
    assert!(
        str_at(&doc["services"]["temporal"], &["image"])
            .unwrap()
            .starts_with("temporalio/")
    );
    assert_eq!(
        str_at(&doc["services"]["temporal"]["environment"], &["DB"]),
        Some("postgres12")
    );
    let env: Vec<(String, String)> = doc["services"]["api"]["environment"]
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
    assert_settings_accepted(&env, "compose.yaml api environment");
}

#[test]
fn the_dockerfile_is_multi_stage_with_a_slim_non_root_runtime() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[1].contains("slim"));
    assert!(text.contains("libtesseract5"));
    assert!(
        text.lines()
            .any(|l| l.starts_with("USER ") && !l.contains("root"))
    );
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/zengine\"]"));
    let env: Vec<(String, String)> = text
        .split("ENV ")
        .nth(1)
        .unwrap()
        .split("\nEXPOSE")
        .next()
        .unwrap()
        .split_whitespace()
        .filter(|t| *t != "\\")
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(env.len() >= 4, "{env:?}");
    assert_settings_accepted(&env, "Dockerfile ENV");
}
