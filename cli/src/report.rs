//! What a migration could not carry over, and what a reader should know about what it did.
//!
//! Data flow: [`crate::convert`] records a [`Finding`] for everything it leaves out, changes
//! or skips; [`crate::migrate`] prints [`Report::render`] on stderr, and
//! [`crate::manifest`] repeats the left-out list in the output's header, so a file written
//! with `-o` still says what it lacks. Whether anything was left out decides the exit status
//! under `--strict` ([`Report::is_complete`]).

use std::fmt::Write as _;

/// One thing the report names, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The object or setting with where it was read, e.g.
    /// `BGPPeer metallb-system/router (cluster)` or
    /// `address-pools[1] "bgp" of ConfigMap metallb-system/config (tutorial.yaml)`.
    pub subject: String,
    /// Why it was left out, or what the reader should know.
    pub reason: String,
}

impl Finding {
    /// A finding about `subject`.
    pub fn new(subject: impl ToString, reason: impl Into<String>) -> Self {
        Self { subject: subject.to_string(), reason: reason.into() }
    }

    fn line(&self) -> String {
        format!("{}: {}", self.subject, self.reason)
    }
}

/// Everything a migration has to say besides the objects it wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// MetalLB settings with no ironlb counterpart: the cluster behaves differently without them.
    pub left_out: Vec<Finding>,
    /// Converted, with a remark (an entry respelled, a pool nobody announces).
    pub notes: Vec<Finding>,
    /// Input that is not MetalLB configuration at all.
    pub ignored: Vec<Finding>,
}

impl Report {
    /// Whether every MetalLB setting read was converted.
    pub fn is_complete(&self) -> bool {
        self.left_out.is_empty()
    }

    /// The report for stderr: a summary line, then each section that has entries.
    pub fn render(&self, summary: &str) -> String {
        let mut out = format!("ironlb migrate: {summary}\n");
        let sections = [
            ("NOT CONVERTED", &self.left_out),
            ("Notes", &self.notes),
            ("Ignored (not MetalLB configuration)", &self.ignored),
        ];
        for (title, findings) in sections {
            if findings.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title} ({}):", findings.len());
            for finding in findings {
                let _ = writeln!(out, "  - {}", finding.line());
            }
        }
        out
    }

    /// The left-out list as YAML comment lines, for the output's header.
    pub fn left_out_comment(&self) -> String {
        if self.left_out.is_empty() {
            return "# Not converted: nothing; every MetalLB setting read has an ironlb equivalent below.\n".to_owned();
        }
        let mut out = format!(
            "# NOT CONVERTED ({}), so the cluster will behave differently without them:\n",
            self.left_out.len()
        );
        for finding in &self.left_out {
            let _ = writeln!(out, "#   - {}", finding.line());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_sections_are_not_printed() {
        let report = Report { notes: vec![Finding::new("pool \"a\" (stdin)", "why")], ..Report::default() };
        let text = report.render("converted 1 IPAddressPool");
        assert_eq!(text, "ironlb migrate: converted 1 IPAddressPool\nNotes (1):\n  - pool \"a\" (stdin): why\n");
        assert!(report.is_complete());
    }

    #[test]
    fn a_left_out_finding_makes_the_migration_incomplete_and_is_repeated_in_the_header() {
        let report = Report { left_out: vec![Finding::new("BGPPeer r (stdin)", "no BGP")], ..Report::default() };
        assert!(!report.is_complete());
        assert!(report.left_out_comment().contains("#   - BGPPeer r (stdin): no BGP\n"));
    }
}
