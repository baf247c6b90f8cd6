//! The end-to-end suite: every test runs against the real lab (etcd,
//! kube-apiserver, kube-controller-manager, the chart installed by helm) and
//! drives it with the tools a user has.
//!
//! The lab is started on first use, so `--list` or a filter that matches
//! nothing costs nothing. Tests run one at a time by default: several of them
//! assert that "nothing else in the cluster changed", which a neighbour test
//! would falsify.

mod api;
mod chart;
mod control_plane;
mod demo;
mod docs;
mod failover;
mod faults;
mod migrate;
mod operator;
mod scale;
mod speaker;
mod support;
mod unreadable;
mod wire;

use std::sync::{Mutex, OnceLock};

use ironlb_e2e::{Lab, LabSession};
use libtest_mimic::{Arguments, Failed, Trial};

/// A test of the suite: a name that states the rule, and its body.
type Test = (&'static str, fn(&Lab) -> anyhow::Result<()>);

static SESSION: OnceLock<Mutex<Option<LabSession>>> = OnceLock::new();

fn lab() -> Result<Lab, Failed> {
    let slot = SESSION.get_or_init(|| Mutex::new(None));
    let mut session = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if session.is_none() {
        *session = Some(LabSession::start().map_err(|e| Failed::from(format!("the lab did not come up: {e:#}")))?);
    }
    session.as_ref().map(|s| s.lab().clone()).ok_or_else(|| "no lab".into())
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let tests: Vec<Test> = [
        control_plane::TESTS,
        chart::TESTS,
        api::TESTS,
        operator::TESTS,
        speaker::TESTS,
        faults::TESTS,
        failover::TESTS,
        demo::TESTS,
        docs::TESTS,
        migrate::TESTS,
        unreadable::TESTS,
        scale::TESTS,
    ]
    .concat();
    let mut trials: Vec<Trial> = tests
        .into_iter()
        .map(|(name, test)| Trial::test(name, move || test(&lab()?).map_err(|e| format!("{e:#}").into())))
        .collect();
    // Reads the docs only: runs without starting the lab (`make unit` runs it alone).
    trials.push(Trial::test(docs::COVERAGE_CHECK, || {
        docs::every_documented_command_is_run_by_a_test().map_err(|e| format!("{e:#}").into())
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(session) = SESSION.get().and_then(|slot| slot.lock().ok()?.take()) {
        session.finish(conclusion.has_failed());
    }
    conclusion.exit();
}
