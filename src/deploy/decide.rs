//! The pipeline's pure core: given what a phase reported, what happens next. No IO, no clock:
//! the orchestrator ([`super::run`]) does what this decides, and every path through the
//! pipeline is a row of the table test at the bottom.
//!
//! ```text
//! PREFLIGHT -> SANDBOX_VALIDATION -> BACKUP -> DEPLOY -> POST_DEPLOY_VALIDATION -> SUCCESS
//!                                                    \-> ROLLBACK -> ROLLED_BACK | NEEDS_HUMAN
//! ```
//! A stop before DEPLOY changes anything is an abort (exit 1). Once DEPLOY has started, a
//! failure is a failed deployment: exit 3 when the target is back as it was (its transaction
//! rolled back, or ROLLBACK restored and proved it), 4 when it is not.

use serde::Serialize;

use crate::error::ExitCode;

/// The pipeline's phases, as they appear in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Phase {
    Preflight,
    SandboxValidation,
    Backup,
    Deploy,
    PostDeployValidation,
    Rollback,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preflight => "PREFLIGHT",
            Phase::SandboxValidation => "SANDBOX_VALIDATION",
            Phase::Backup => "BACKUP",
            Phase::Deploy => "DEPLOY",
            Phase::PostDeployValidation => "POST_DEPLOY_VALIDATION",
            Phase::Rollback => "ROLLBACK",
        }
    }
}

/// What a phase reported, reduced to what the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `refused`: the state, the git tree, a live deployment or a check stops the run.
    /// `code`: the app provider has code to deploy (the feature is not in the environment's
    /// branch yet).
    Preflight {
        refused: bool,
        pending: usize,
        code: bool,
    },
    /// The rehearsal's policy verdict (`abort` false: proceed, with or without warnings).
    SandboxValidation {
        abort: bool,
    },
    /// The backup was taken and verified, and the target is still what the sandbox was cloned
    /// from.
    Backup {
        ok: bool,
    },
    /// `changed`: something committed on the target (a migration, or part of one).
    Deploy {
        ok: bool,
        changed: bool,
    },
    PostDeployValidation {
        ok: bool,
    },
    /// `writes_found`: the data-loss guard found writes the rollback would lose;
    /// `allow_loss`: `[policy] rows_lost = "allow"`; `proven`: rolled back and the fingerprint
    /// and touched tables match the pre-deploy record; `code_ok`: the code half was rolled back
    /// and the app answers from the old code (true when there is no code half).
    Rollback {
        writes_found: bool,
        allow_loss: bool,
        proven: bool,
        code_ok: bool,
    },
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing was pending.
    UpToDate,
    /// `--dry-run`/`plan`: the rehearsal says a deploy would proceed.
    WouldProceed,
    /// Stopped before the target changed.
    Aborted,
    Succeeded,
    /// Failed, and the target is as it was before.
    RolledBack,
    /// Failed, and the target is not as it was: a person must act.
    NeedsHuman,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::UpToDate | Outcome::WouldProceed | Outcome::Succeeded => ExitCode::Ok,
            Outcome::Aborted => ExitCode::Refused,
            Outcome::RolledBack => ExitCode::RolledBack,
            Outcome::NeedsHuman => ExitCode::NeedsHuman,
        }
    }

    /// The status word in `pgship.deployments` and `history`.
    pub fn status(self) -> &'static str {
        match self {
            Outcome::UpToDate => "up-to-date",
            Outcome::WouldProceed => "would-proceed",
            Outcome::Aborted => "aborted",
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled-back",
            Outcome::NeedsHuman => "needs-human",
        }
    }

    /// The phase of the log's last line.
    pub fn phase(self) -> &'static str {
        match self {
            Outcome::Succeeded | Outcome::UpToDate | Outcome::WouldProceed => "SUCCESS",
            Outcome::Aborted => "ABORTED",
            Outcome::RolledBack => "ROLLED_BACK",
            Outcome::NeedsHuman => "NEEDS_HUMAN",
        }
    }
}

/// What to do after a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Run(Phase),
    Stop(Outcome),
}

/// The decision. `dry_run` stops after SANDBOX_VALIDATION.
pub fn next(report: Report, dry_run: bool) -> Next {
    use Next::{Run, Stop};
    match report {
        Report::Preflight { refused: true, .. } => Stop(Outcome::Aborted),
        // No migration but code: DEPLOY of the code alone (a dry run says it would).
        Report::Preflight {
            pending: 0,
            code: true,
            ..
        } if dry_run => Stop(Outcome::WouldProceed),
        Report::Preflight {
            pending: 0,
            code: true,
            ..
        } => Run(Phase::Deploy),
        Report::Preflight { pending: 0, .. } => Stop(Outcome::UpToDate),
        Report::Preflight { .. } => Run(Phase::SandboxValidation),
        Report::SandboxValidation { abort: true } => Stop(Outcome::Aborted),
        Report::SandboxValidation { .. } if dry_run => Stop(Outcome::WouldProceed),
        Report::SandboxValidation { .. } => Run(Phase::Backup),
        Report::Backup { ok: true } => Run(Phase::Deploy),
        Report::Backup { ok: false } => Stop(Outcome::Aborted),
        Report::Deploy { ok: true, .. } => Run(Phase::PostDeployValidation),
        // Its transaction rolled back: nothing to undo (the rollback still proves it).
        Report::Deploy { ok: false, .. } => Run(Phase::Rollback),
        Report::PostDeployValidation { ok: true } => Stop(Outcome::Succeeded),
        Report::PostDeployValidation { ok: false } => Run(Phase::Rollback),
        Report::Rollback {
            proven: true,
            code_ok: true,
            ..
        } => Stop(Outcome::RolledBack),
        Report::Rollback { .. } => Stop(Outcome::NeedsHuman),
    }
}

/// Whether the rollback may restore data: no writes found since the backup, or the loss is
/// allowed by policy. A change that committed nothing needs no restore at all.
pub fn may_restore(changed: bool, writes_found: bool, allow_loss: bool) -> bool {
    !changed || !writes_found || allow_loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use Next::{Run, Stop};

    #[test]
    fn every_path_through_the_pipeline() {
        let rb = |writes_found, allow_loss, proven| Report::Rollback {
            writes_found,
            allow_loss,
            proven,
            code_ok: true,
        };
        let code_failed = Report::Rollback {
            writes_found: false,
            allow_loss: false,
            proven: true,
            code_ok: false,
        };
        let cases: &[(Report, bool, Next)] = &[
            (
                Report::Preflight {
                    refused: true,
                    pending: 3,
                    code: false,
                },
                false,
                Stop(Outcome::Aborted),
            ),
            (
                Report::Preflight {
                    refused: false,
                    pending: 0,
                    code: false,
                },
                false,
                Stop(Outcome::UpToDate),
            ),
            (
                Report::Preflight {
                    refused: false,
                    pending: 2,
                    code: false,
                },
                true,
                Run(Phase::SandboxValidation),
            ),
            (
                Report::SandboxValidation { abort: true },
                false,
                Stop(Outcome::Aborted),
            ),
            (
                Report::SandboxValidation { abort: true },
                true,
                Stop(Outcome::Aborted),
            ),
            (
                Report::SandboxValidation { abort: false },
                true,
                Stop(Outcome::WouldProceed),
            ),
            (
                Report::SandboxValidation { abort: false },
                false,
                Run(Phase::Backup),
            ),
            (Report::Backup { ok: false }, false, Stop(Outcome::Aborted)),
            (Report::Backup { ok: true }, false, Run(Phase::Deploy)),
            (
                Report::Deploy {
                    ok: true,
                    changed: true,
                },
                false,
                Run(Phase::PostDeployValidation),
            ),
            (
                Report::Deploy {
                    ok: false,
                    changed: false,
                },
                false,
                Run(Phase::Rollback),
            ),
            (
                Report::Deploy {
                    ok: false,
                    changed: true,
                },
                false,
                Run(Phase::Rollback),
            ),
            (
                Report::PostDeployValidation { ok: true },
                false,
                Stop(Outcome::Succeeded),
            ),
            (
                Report::PostDeployValidation { ok: false },
                false,
                Run(Phase::Rollback),
            ),
            (rb(false, false, true), false, Stop(Outcome::RolledBack)),
            (rb(true, true, true), false, Stop(Outcome::RolledBack)),
            (rb(true, false, false), false, Stop(Outcome::NeedsHuman)),
            (rb(false, false, false), false, Stop(Outcome::NeedsHuman)),
            // The database is back but the code is not (or the app does not answer from the
            // old code): a person must act.
            (code_failed, false, Stop(Outcome::NeedsHuman)),
            // Code to deploy and no migration: the code alone; a plan says it would.
            (
                Report::Preflight {
                    refused: false,
                    pending: 0,
                    code: true,
                },
                false,
                Run(Phase::Deploy),
            ),
            (
                Report::Preflight {
                    refused: false,
                    pending: 0,
                    code: true,
                },
                true,
                Stop(Outcome::WouldProceed),
            ),
            (
                Report::Preflight {
                    refused: true,
                    pending: 0,
                    code: true,
                },
                false,
                Stop(Outcome::Aborted),
            ),
        ];
        for (report, dry_run, want) in cases {
            assert_eq!(
                next(*report, *dry_run),
                *want,
                "{report:?} dry_run={dry_run}"
            );
        }
    }

    #[test]
    fn outcomes_map_to_the_documented_exit_codes() {
        let codes = [
            (Outcome::UpToDate, 0),
            (Outcome::WouldProceed, 0),
            (Outcome::Succeeded, 0),
            (Outcome::Aborted, 1),
            (Outcome::RolledBack, 3),
            (Outcome::NeedsHuman, 4),
        ];
        for (o, code) in codes {
            assert_eq!(o.exit_code() as i32, code, "{o:?}");
        }
    }

    #[test]
    fn the_guard_stops_a_restore_only_when_data_would_be_lost() {
        assert!(may_restore(false, true, false), "nothing committed");
        assert!(may_restore(true, false, false), "no writes found");
        assert!(may_restore(true, true, true), "loss allowed by policy");
        assert!(!may_restore(true, true, false));
    }
}
