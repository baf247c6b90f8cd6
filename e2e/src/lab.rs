//! Bringing the lab up for a test run and taking it down again.
//!
//! The suite reuses a lab a person already started (`make lab-up`) and leaves
//! it running; a lab the suite started itself is removed when the suite ends,
//! whatever the outcome. When a test failed, the control-plane logs are kept
//! under `e2e/.logs/<time>/` before anything is removed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use crate::command::{CommandOutput, run};

/// A running lab: where it is and the environment its `env` file sets up
/// (`PATH` with `e2e/bin` first, `KUBECONFIG`, `LAB_*`).
#[derive(Debug, Clone)]
pub struct Lab {
    root: PathBuf,
    env: BTreeMap<String, String>,
}

impl Lab {
    /// The repository checkout the lab runs from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A variable of the lab's `env` file, such as `LAB_CLIENT`.
    pub fn var(&self, name: &str) -> Result<&str> {
        self.env.get(name).map(String::as_str).with_context(|| format!("e2e/.lab/env does not set {name}"))
    }

    /// The lab's node namespaces, which are also its Node names.
    pub fn nodes(&self) -> Result<Vec<String>> {
        Ok(self.var("LAB_NODES")?.split_whitespace().map(str::to_owned).collect())
    }

    /// A command that runs in the repository root with the lab's environment,
    /// as it would in a shell that sourced `e2e/.lab/env`.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.current_dir(&self.root).env_clear().envs(&self.env);
        command
    }

    /// Runs `program` with `args` in the lab's environment.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<CommandOutput> {
        let mut command = self.command(program);
        command.args(args);
        run(command, None)
    }

    /// Runs `kubectl` with `args`.
    pub fn kubectl(&self, args: &[&str]) -> Result<CommandOutput> {
        self.run("kubectl", args)
    }

    /// Runs `kubectl` with `args`, feeding it `stdin` (e.g. `apply -f -`).
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Result<CommandOutput> {
        let mut command = self.command("kubectl");
        command.args(args);
        run(command, Some(stdin))
    }

    /// Runs `helm` with `args`.
    pub fn helm(&self, args: &[&str]) -> Result<CommandOutput> {
        self.run("helm", args)
    }

    /// Runs `args` inside the network namespace `netns` (`ip netns exec`).
    pub fn in_netns(&self, netns: &str, args: &[&str]) -> Result<CommandOutput> {
        self.run("ip", &[&["netns", "exec", netns], args].concat())
    }

    /// `kubectl apply -f -` of `yaml`, which must succeed.
    pub fn apply(&self, yaml: &str) -> Result<CommandOutput> {
        self.kubectl_with_input(&["apply", "-f", "-"], yaml)?.ok()
    }

    /// A guard that deletes what a test made when it goes out of scope, pass
    /// or fail: namespaces first (waiting, so their Services are gone), then
    /// cluster-scoped objects.
    pub fn cleanup(&self) -> Cleanup {
        Cleanup { lab: self.clone(), namespaces: Vec::new(), objects: Vec::new() }
    }

    /// A kube-rs client authenticated like `kubectl` (the lab's admin).
    pub async fn client(&self) -> Result<kube::Client> {
        let kubeconfig = kube::config::Kubeconfig::read_from(self.var("KUBECONFIG")?)?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        Ok(kube::Client::try_from(config)?)
    }
}

/// Deletes a test's objects when dropped; see [`Lab::cleanup`].
#[derive(Debug)]
pub struct Cleanup {
    lab: Lab,
    namespaces: Vec<String>,
    objects: Vec<String>,
}

impl Cleanup {
    /// Creates namespace `name` now and deletes it (with its Services) at the end. Returns once
    /// kube-controller-manager has given it its `default` ServiceAccount: until then the API server
    /// refuses Pods there (slow after a control-plane restart, while the controller relists).
    pub fn namespace(&mut self, name: &str) -> Result<()> {
        self.namespaces.push(name.to_owned());
        self.lab.kubectl(&["create", "namespace", name])?.ok()?;
        crate::wait_for(&format!("the default ServiceAccount of namespace {name}"), Duration::from_secs(120), || {
            Ok(self.lab.kubectl(&["get", "serviceaccount", "default", "-n", name])?.success.then_some(()))
        })
    }

    /// Deletes the object `kind/name` (e.g. `ipaddresspool/web`; namespaced ones in
    /// `default`) at the end.
    pub fn object(&mut self, object: &str) {
        self.objects.push(object.to_owned());
    }
}

impl Cleanup {
    /// Deletes `name` at the end without creating it (a namespace something else made).
    pub fn adopt_namespace(&mut self, name: &str) {
        self.namespaces.push(name.to_owned());
    }

    /// Deletes everything registered now: namespaces first, waiting up to `namespace_timeout`
    /// for their contents to go (so no Service outlives its pool), then the other objects.
    /// Failures are reported, not returned: cleanup runs on the way out of a failed test too.
    pub fn delete_now(&mut self, namespace_timeout: Duration) {
        let namespace_timeout = format!("--timeout={}s", namespace_timeout.as_secs());
        let namespaces: &[&str] = &["delete", "namespace", "--ignore-not-found", &namespace_timeout];
        let objects: &[&str] = &["delete", "--ignore-not-found", "--timeout=120s"];
        let (registered_namespaces, registered_objects) =
            (std::mem::take(&mut self.namespaces), std::mem::take(&mut self.objects));
        for (command, targets) in [(namespaces, &registered_namespaces), (objects, &registered_objects)] {
            if targets.is_empty() {
                continue;
            }
            let args: Vec<&str> = command.iter().copied().chain(targets.iter().map(String::as_str)).collect();
            match self.lab.kubectl(&args) {
                Ok(output) if output.success => {}
                Ok(output) => eprintln!("cleanup `kubectl {}` failed: {}", args.join(" "), output.stderr),
                Err(error) => eprintln!("cleanup `kubectl {}` failed: {error:#}", args.join(" ")),
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Generous: a namespace goes in seconds, but after a control-plane restart the namespace
        // controller relists first, and a pool deleted before its Services are gone would leave
        // their addresses held for the next test.
        self.delete_now(Duration::from_secs(240));
    }
}

/// The lab for one run of the suite. Dropping it without [`LabSession::finish`]
/// (a panic in the harness) counts as a failure: logs are kept, and a lab the
/// session started is removed.
#[derive(Debug)]
pub struct LabSession {
    lab: Lab,
    started_here: bool,
    finished: bool,
}

impl LabSession {
    /// Starts the lab, or reuses the one already running.
    pub fn start() -> Result<Self> {
        let root = repository_root();
        let env_file = root.join("e2e/.lab/env");
        let started_here = !env_file.exists();
        // up.sh reuses a healthy lab and repairs a half-made one, so calling it
        // either way leaves a lab that works.
        let mut up = Command::new(root.join("e2e/lab/up.sh"));
        up.current_dir(&root);
        let status = up.status().context("cannot run e2e/lab/up.sh")?;
        let mut session = Self { lab: Lab { root, env: BTreeMap::new() }, started_here, finished: false };
        anyhow::ensure!(status.success(), "e2e/lab/up.sh failed ({status}); its output is above");
        session.lab.env = read_env_file(&env_file)?;
        Ok(session)
    }

    /// The running lab.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// Ends the session: keeps the logs when `failed`, and removes the lab
    /// when this session started it (unless `LAB_KEEP=1` asks to keep it).
    pub fn finish(mut self, failed: bool) {
        self.finished = true;
        self.end(failed);
    }

    fn end(&self, failed: bool) {
        let keep_logs = failed.then(|| {
            let stamp = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
            self.lab.root.join("e2e/.logs").join(stamp.to_string())
        });
        let keep_lab = std::env::var("LAB_KEEP").is_ok_and(|v| v == "1");
        if self.started_here && !keep_lab {
            let mut down = Command::new(self.lab.root.join("e2e/lab/down.sh"));
            down.current_dir(&self.lab.root);
            if let Some(dir) = &keep_logs {
                down.env("LAB_KEEP_LOGS", dir);
            }
            if let Err(error) = down.status() {
                eprintln!("cannot run e2e/lab/down.sh: {error}; run `make lab-down`");
            }
        } else if let Some(dir) = &keep_logs {
            copy_logs(&self.lab.root.join("e2e/.lab/logs"), dir);
        }
        if let Some(dir) = keep_logs {
            eprintln!("lab logs kept in {}", dir.display());
        }
    }
}

impl Drop for LabSession {
    fn drop(&mut self) {
        if !self.finished {
            self.end(true);
        }
    }
}

/// The checkout this crate was built from (`e2e/..`).
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The environment a shell has after sourcing `file`: the lab's `env` file is
/// shell, so a shell reads it.
fn read_env_file(file: &Path) -> Result<BTreeMap<String, String>> {
    let mut shell = Command::new("bash");
    shell.arg("-c").arg(r#"set -e; . "$1"; env -0"#).arg("bash").arg(file);
    let output = run(shell, None)?.ok()?;
    Ok(output
        .stdout
        .split('\0')
        .filter_map(|entry| entry.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

fn copy_logs(from: &Path, to: &Path) {
    let copied = std::fs::create_dir_all(to).and_then(|()| {
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
        Ok(())
    });
    if let Err(error) = copied {
        eprintln!("cannot keep the lab logs from {}: {error}", from.display());
    }
}
