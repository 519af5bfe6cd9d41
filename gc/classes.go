// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

// Class is the verdict on one candidate data directory. Only ClassOrphan is
// ever reclaimed.
type Class string

// The classes, from "never touch" to "reclaim".
const (
	// ClassLive: a process runs this VM, or may. Kept.
	ClassLive Class = "live"
	// ClassBusy: a writer holds the state lock right now. Kept.
	ClassBusy Class = "busy"
	// ClassOrphan: nothing runs this VM any more. Collect reclaims it.
	ClassOrphan Class = "orphan"
	// ClassStopped: cleanly stopped. Kept unless WithStopped.
	ClassStopped Class = "stopped"
	// ClassUnknown: the facts allow no safe verdict. Kept and reported.
	ClassUnknown Class = "unknown"
	// ClassUnreadable: the state file could not be read. Kept and reported.
	ClassUnreadable Class = "unreadable"
)

// Reason says why a candidate got its class: one per row of the
// classification table in docs/DESIGN.md. The class is in parentheses.
type Reason string

// The reasons.
const (
	// ReasonLeaseHeld (live): the run lease is held.
	ReasonLeaseHeld Reason = "lease-held"
	// ReasonStateLocked (busy): the state lock is held.
	ReasonStateLocked Reason = "state-locked"
	// ReasonProbeFailed (unknown): a lock could not be probed.
	ReasonProbeFailed Reason = "probe-failed"
	// ReasonUnreadable (unreadable): the state file could not be read.
	ReasonUnreadable Reason = "unreadable"
	// ReasonRunEnded (orphan): run marker set, lease free.
	ReasonRunEnded Reason = "run-ended"
	// ReasonLeaseLost (live): run marker set, lease free, but the runner
	// with the recorded exact identity is alive.
	ReasonLeaseLost Reason = "lease-lost"
	// ReasonRebooted (orphan): the record is from an earlier boot.
	ReasonRebooted Reason = "rebooted"
	// ReasonRunnerDead (orphan): no process has the recorded PID.
	ReasonRunnerDead Reason = "runner-dead"
	// ReasonRunnerZombie (orphan): the recorded PID is a zombie.
	ReasonRunnerZombie Reason = "runner-zombie"
	// ReasonPIDReused (orphan): another process has the recorded PID.
	ReasonPIDReused Reason = "pid-reused"
	// ReasonRunnerMatches (live): the recorded runner has the PID.
	ReasonRunnerMatches Reason = "runner-matches"
	// ReasonRunnerAmbiguous (live): without exact identity, the wall clock
	// and the process's names disagree; the clock alone never reclaims.
	ReasonRunnerAmbiguous Reason = "runner-ambiguous"
	// ReasonIdentityUnreadable (live): the identity of the process with the
	// recorded PID cannot be read.
	ReasonIdentityUnreadable Reason = "identity-unreadable"
	// ReasonOtherPIDNamespace (unknown): the PID was recorded in another
	// PID namespace; only a collector there can judge it.
	ReasonOtherPIDNamespace Reason = "other-pid-namespace"
	// ReasonPIDNamespaceUnknown (unknown): the collector cannot tell that
	// it sees the PID in the namespace it was recorded in.
	ReasonPIDNamespaceUnknown Reason = "pid-namespace-unknown"
	// ReasonRunnerOtherNamespace (live): a record without its namespace
	// whose PID a runner holds in a nested namespace (a container's).
	ReasonRunnerOtherNamespace Reason = "runner-other-namespace"
	// ReasonNoPID (unknown): active, but no usable PID recorded.
	ReasonNoPID Reason = "no-pid"
	// ReasonInactive (stopped): cleanly stopped.
	ReasonInactive Reason = "inactive"
	// ReasonStoppedExpired (orphan): stopped and older than WithStopped's age.
	ReasonStoppedExpired Reason = "stopped-expired"
	// ReasonLeftover (orphan): an embedder's leftovers (WithOwnedNames);
	// removed unless WithKeep vetoes it.
	ReasonLeftover Reason = "leftover"
	// ReasonNoVeto (unknown): an embedder's leftovers, with no WithKeep.
	ReasonNoVeto Reason = "no-veto"
	// ReasonEmbedderKeep: WithKeep vetoed the reclaim, or did not return.
	ReasonEmbedderKeep Reason = "embedder-keep"
)
