// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package judge

// Class is the verdict on one data directory, documented by package gc.
type Class string

// The classes, from "never touch" to "reclaim".
const (
	ClassLive       Class = "live"
	ClassBusy       Class = "busy"
	ClassOrphan     Class = "orphan"
	ClassStopped    Class = "stopped"
	ClassUnknown    Class = "unknown"
	ClassUnreadable Class = "unreadable"
)

// Reason says why a directory got its class, documented by package gc.
type Reason string

// The reasons.
const (
	ReasonLeaseHeld            Reason = "lease-held"
	ReasonStateLocked          Reason = "state-locked"
	ReasonProbeFailed          Reason = "probe-failed"
	ReasonUnreadable           Reason = "unreadable"
	ReasonRunEnded             Reason = "run-ended"
	ReasonLeaseLost            Reason = "lease-lost"
	ReasonRebooted             Reason = "rebooted"
	ReasonRunnerDead           Reason = "runner-dead"
	ReasonRunnerZombie         Reason = "runner-zombie"
	ReasonPIDReused            Reason = "pid-reused"
	ReasonRunnerMatches        Reason = "runner-matches"
	ReasonRunnerAmbiguous      Reason = "runner-ambiguous"
	ReasonIdentityUnreadable   Reason = "identity-unreadable"
	ReasonOtherPIDNamespace    Reason = "other-pid-namespace"
	ReasonPIDNamespaceUnknown  Reason = "pid-namespace-unknown"
	ReasonRunnerOtherNamespace Reason = "runner-other-namespace"
	ReasonNoPID                Reason = "no-pid"
	ReasonInactive             Reason = "inactive"
	ReasonStoppedExpired       Reason = "stopped-expired"
	ReasonLeftover             Reason = "leftover"
	ReasonNoVeto               Reason = "no-veto"
	ReasonEmbedderKeep         Reason = "embedder-keep"
)
