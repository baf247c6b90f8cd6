//! `ironlb migrate` as a user runs it: files and stdin in, manifest on stdout or `-o`, the
//! report on stderr, and the exit statuses scripts rely on.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn ironlb(args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ironlb"));
    command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A developer's environment must not change what the flags say.
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IRONLB_MIGRATE_")) {
        command.env_remove(name);
    }
    let mut child = command.spawn().expect("the ironlb binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.unwrap_or_default().as_bytes()).expect("stdin is written");
    drop(pipe);
    child.wait_with_output().expect("ironlb finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("fixture paths are UTF-8")
}

#[test]
fn tutorial_configmap_file_gives_the_pool_and_advertisement_and_exits_0() {
    let out = ironlb(&["migrate", "-f", path(&fixture("tutorial-configmap.yaml"))], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let manifest = text(&out.stdout);
    assert!(
        manifest.contains(
            "kind: IPAddressPool\nmetadata:\n  name: default\nspec:\n  addresses:\n  - 192.168.2.10-192.168.2.49\n"
        ),
        "{manifest}"
    );
    assert!(
        manifest.contains("kind: L2Advertisement\nmetadata:\n  name: default\nspec:\n  ipAddressPools:\n  - default\n"),
        "{manifest}"
    );
    assert!(text(&out.stderr).contains("converted 1 IPAddressPool and 1 L2Advertisement; nothing left out"));
}

#[test]
fn stdin_is_read_with_a_dash() {
    let configmap = std::fs::read_to_string(fixture("tutorial-configmap.yaml")).expect("fixture");
    let out = ironlb(&["migrate", "-f", "-"], Some(&configmap));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("# Read from: stdin\n"));
    assert!(text(&out.stdout).contains("192.168.2.10-192.168.2.49"));
}

#[test]
fn output_flag_writes_the_manifest_to_the_file_only() {
    let dir = std::env::temp_dir().join(format!("ironlb-migrate-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("ironlb.yaml");
    let out = ironlb(&["migrate", "-f", path(&fixture("tutorial-configmap.yaml")), "-o", path(&file)], None);
    let written = std::fs::read_to_string(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout should stay empty: {}", text(&out.stdout));
    assert!(written.expect("the file is written").contains("kind: IPAddressPool"));
}

#[test]
fn left_out_settings_are_listed_on_stderr_and_the_rest_is_written() {
    let out = ironlb(&["migrate", "-f", path(&fixture("legacy-mixed.yaml"))], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let report = text(&out.stderr);
    assert!(report.contains("NOT CONVERTED (3):"), "{report}");
    assert!(report.contains(r#"address-pools[2] "routed""#) && report.contains("protocol: bgp"), "{report}");
    assert!(report.contains("BGP peer 10.0.0.1"), "{report}");
    assert!(text(&out.stdout).contains("name: lan"));
    assert!(!text(&out.stdout).contains("203.0.113.0/24"), "the BGP pool must not be written");
}

#[test]
fn strict_writes_nothing_and_exits_3_when_something_is_left_out() {
    let out = ironlb(&["migrate", "--strict", "-f", path(&fixture("legacy-mixed.yaml"))], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty(), "nothing may reach `kubectl apply`: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("--strict: nothing written"));

    let complete = ironlb(&["migrate", "--strict", "-f", path(&fixture("tutorial-configmap.yaml"))], None);
    assert_eq!(complete.status.code(), Some(0), "a complete migration passes --strict");
}

#[test]
fn invalid_address_exits_1_naming_pool_and_entry_and_writes_nothing() {
    let out = ironlb(&["migrate", "-f", path(&fixture("bad-address.yaml"))], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let error = text(&out.stderr);
    assert!(
        error.contains(r#"address-pools[0] "default" of ConfigMap metallb-system/config"#)
            && error.contains(r#"address entry "192.168.3.49-192.168.3.10" is reversed"#),
        "{error}"
    );
}

#[test]
fn nothing_to_convert_exits_3() {
    let bgp_only = "address-pools:\n- name: routed\n  protocol: bgp\n  addresses: [203.0.113.0/24]\n";
    let out = ironlb(&["migrate", "-f", "-"], Some(bgp_only));
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("nothing to write"), "{}", text(&out.stderr));
}

#[test]
fn missing_file_exits_1_naming_it() {
    let out = ironlb(&["migrate", "-f", "/nonexistent/metallb.yaml"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/metallb.yaml"), "{}", text(&out.stderr));
}

#[test]
fn no_input_is_a_usage_error() {
    let out = ironlb(&["migrate"], None);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
}
