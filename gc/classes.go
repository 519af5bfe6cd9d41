// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package gc

import "github.com/stacklok/go-microvm/internal/judge"

// Class is the verdict on one candidate data directory. Only ClassOrphan is
// ever reclaimed.
type Class = judge.Class

// The classes, from "never touch" to "reclaim".
const (
	// ClassLive: a process runs this VM, or may. Kept.
	ClassLive Class = judge.ClassLive
	// ClassBusy: a writer holds the state lock right now. Kept.
	ClassBusy Class = judge.ClassBusy
	// ClassOrphan: nothing runs this VM any more. Collect reclaims it.
	ClassOrphan Class = judge.ClassOrphan
	// ClassStopped: cleanly stopped. Kept unless WithStopped.
	ClassStopped Class = judge.ClassStopped
	// ClassUnknown: the facts allow no safe verdict. Kept and reported.
	ClassUnknown Class = judge.ClassUnknown
	// ClassUnreadable: the state file could not be read. Kept and reported.
	ClassUnreadable Class = judge.ClassUnreadable
)

// Reason says why a candidate got its class: one per row of the
// classification table in docs/DESIGN.md. The class is in parentheses.
type Reason = judge.Reason

// The reasons.
const (
	// ReasonLeaseHeld (live): the run lease is held.
	ReasonLeaseHeld Reason = judge.ReasonLeaseHeld
	// ReasonStateLocked (busy): the state lock is held.
	ReasonStateLocked Reason = judge.ReasonStateLocked
	// ReasonProbeFailed (unknown): a lock could not be probed.
	ReasonProbeFailed Reason = judge.ReasonProbeFailed
	// ReasonUnreadable (unreadable): the state file could not be read.
	ReasonUnreadable Reason = judge.ReasonUnreadable
	// ReasonRunEnded (orphan): run marker set, lease free.
	ReasonRunEnded Reason = judge.ReasonRunEnded
	// ReasonLeaseLost (live): run marker set, lease free, runner alive.
	ReasonLeaseLost Reason = judge.ReasonLeaseLost
	// ReasonRebooted (orphan): the record is from an earlier boot.
	ReasonRebooted Reason = judge.ReasonRebooted
	// ReasonRunnerDead (orphan): no process has the recorded PID.
	ReasonRunnerDead Reason = judge.ReasonRunnerDead
	// ReasonRunnerZombie (orphan): the recorded PID is a zombie.
	ReasonRunnerZombie Reason = judge.ReasonRunnerZombie
	// ReasonPIDReused (orphan): another process has the recorded PID.
	ReasonPIDReused Reason = judge.ReasonPIDReused
	// ReasonRunnerMatches (live): the recorded runner has the PID.
	ReasonRunnerMatches Reason = judge.ReasonRunnerMatches
	// ReasonRunnerAmbiguous (live): without exact identity, clock and names disagree.
	ReasonRunnerAmbiguous Reason = judge.ReasonRunnerAmbiguous
	// ReasonIdentityUnreadable (live): the recorded PID's identity is unreadable.
	ReasonIdentityUnreadable Reason = judge.ReasonIdentityUnreadable
	// ReasonOtherPIDNamespace (unknown): the PID is of another PID namespace.
	ReasonOtherPIDNamespace Reason = judge.ReasonOtherPIDNamespace
	// ReasonPIDNamespaceUnknown (unknown): the PID's namespace cannot be told.
	ReasonPIDNamespaceUnknown Reason = judge.ReasonPIDNamespaceUnknown
	// ReasonRunnerOtherNamespace (live): a runner has the PID in a nested namespace.
	ReasonRunnerOtherNamespace Reason = judge.ReasonRunnerOtherNamespace
	// ReasonNoPID (unknown): active, but no usable PID recorded.
	ReasonNoPID Reason = judge.ReasonNoPID
	// ReasonInactive (stopped): cleanly stopped.
	ReasonInactive Reason = judge.ReasonInactive
	// ReasonStoppedExpired (orphan): stopped and older than WithStopped's age.
	ReasonStoppedExpired Reason = judge.ReasonStoppedExpired
	// ReasonLeftover (orphan): an embedder's leftovers, unless WithKeep vetoes.
	ReasonLeftover Reason = judge.ReasonLeftover
	// ReasonNoVeto (unknown): an embedder's leftovers, with no WithKeep.
	ReasonNoVeto Reason = judge.ReasonNoVeto
	// ReasonEmbedderKeep: WithKeep vetoed the reclaim, or did not return.
	ReasonEmbedderKeep Reason = judge.ReasonEmbedderKeep
)
