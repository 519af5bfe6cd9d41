// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build linux

package stress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stacklok/go-microvm/gc"
	"github.com/stacklok/go-microvm/internal/testproc"
)

// sharedUsers are the two users of TestSharedRoot.
var sharedUsers = []int{0, 65534}

// TestSharedRoot: uid 0 and uid 65534 share one root (mode 1777) for
// STRESS_DURATION, each with a collector running Collect in a loop, while
// the test lays orphans of both users and live VMs of both (a process
// holds the lease), and ends leases at random so that live VMs become
// orphans. One collector per user, so a busy or failed run means one user
// locked the other out: there must be none. No live VM loses a file, and
// a final collection by each user leaves no orphan and no trash.
func TestSharedRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a collector as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed: cannot run as another user")
	}
	dur := envDuration(t, "STRESS_DURATION", 5*time.Second)
	r, seed := newRand(t)
	pub := testproc.PublicTempDir(t)
	exe := testproc.CopyTestBinary(t, pub, "stress.test")
	root := filepath.Join(pub, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o1777); err != nil {
		t.Fatal(err)
	}
	// as runs the test binary as the helper mode, as uid.
	as := func(uid int, mode string, env ...string) *exec.Cmd {
		cmd := exec.Command(exe)
		if uid != 0 {
			id := strconv.Itoa(uid)
			cmd = exec.Command(setpriv, "--reuid="+id, "--regid="+id, "--clear-groups", "--", exe)
		}
		cmd.Env = append(append(os.Environ(), testproc.Env(mode), envRoot+"="+root, "STRESS_SEED="+strconv.FormatUint(seed, 10)), env...)
		return cmd
	}

	deadline := time.Now().Add(dur)
	type collector struct {
		uid         int
		cmd         *exec.Cmd
		out, stderr bytes.Buffer
	}
	var cols []*collector
	for _, uid := range sharedUsers {
		c := &collector{uid: uid, cmd: as(uid, "collect-loop", envDeadline+"="+strconv.FormatInt(deadline.UnixNano(), 10), fmt.Sprintf("%s=u%d", envWorker, uid))}
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.stderr
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start collector: %v", err)
		}
		t.Cleanup(func() { _ = c.cmd.Process.Kill() })
		cols = append(cols, c)
	}

	type live struct {
		dir    string
		holder *testproc.Proc
		sum    map[string]string
	}
	var lives []*live
	laid, ended := 0, 0
	for i := 0; time.Now().Before(deadline); i++ {
		uid := sharedUsers[i%2]
		dir := filepath.Join(root, fmt.Sprintf("u%d-%d", uid, i))
		switch k := r.IntN(4); {
		case k == 0 && len(lives) > 0:
			// A live VM's run ends: its lease goes, it is an orphan.
			j := r.IntN(len(lives))
			lives[j].holder.Kill()
			lives = append(lives[:j], lives[j+1:]...)
			ended++
		default:
			// Laid out aside, its lease taken there for a live one, and
			// renamed in whole: collectors see only complete VMs.
			staged := filepath.Join(pub, "stage")
			buildTree(t, filepath.Join(staged, "rootfs-work"), r, 40, 3)
			markOrphan(t, staged)
			give(t, staged, uid)
			var h *testproc.Proc
			if k == 1 {
				h = testproc.StartCmd(t, as(0, "hold-lease", envTarget+"="+staged))
				h.Expect("ready")
			}
			if err := os.Rename(staged, dir); err != nil {
				t.Fatal(err)
			}
			laid++
			if h != nil {
				lives = append(lives, &live{dir: dir, holder: h, sum: treeSum(t, filepath.Join(dir, "rootfs-work"))})
			}
		}
		time.Sleep(time.Duration(r.IntN(30)) * time.Millisecond)
	}

	for _, c := range cols {
		if err := waitGuard(c.cmd, 2*time.Minute); err != nil {
			t.Fatalf("collector of uid %d: %v\n%s", c.uid, err, c.stderr.String())
		}
		var s collectSummary
		if err := json.Unmarshal(bytes.TrimSpace(c.out.Bytes()), &s); err != nil {
			t.Fatalf("collector summary %q: %v", c.out.String(), err)
		}
		t.Logf("collector of uid %d: %d runs, %d busy, %d failed, %d reclaimed, %d errors",
			c.uid, s.Runs, s.Busy, s.Failed, s.Reclaimed, s.Errors)
		if s.Busy != 0 || s.Failed != 0 || s.Runs == 0 {
			t.Errorf("collector of uid %d: %d of %d runs busy, %d failed; want every run done:\n%s", c.uid, s.Busy, s.Runs, s.Failed, c.stderr.String())
		}
	}
	lost := 0
	for _, l := range lives {
		n, lines := diffSums(l.sum, treeSum(t, filepath.Join(l.dir, "rootfs-work")), 5)
		lost += n
		for _, line := range lines {
			t.Errorf("live %s: %s", l.dir, line)
		}
		l.holder.Kill()
	}

	// A final collection by each user: nobody's first, so that root's,
	// which may remove anything, does not hide a failure of nobody's.
	for _, uid := range []int{65534, 0} {
		cmd := as(uid, "collect")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("final collect as uid %d: %v\n%s", uid, err, out)
		}
	}
	if left, err := gc.Orphans(root); err != nil || len(left) != 0 {
		t.Errorf("after the final collections: orphans %v, err %v", left, err)
	}
	if left := trashEntries(t, root); len(left) != 0 {
		t.Errorf("after the final collections the trash holds %v", left)
	}
	t.Logf("%v, uid 0 and uid 65534 on one 1777 root: %d VMs laid (%d live, %d of which ended), files lost %d",
		dur, laid, len(lives)+ended, ended, lost)
}

// give gives everything below dir, and dir, to uid.
func give(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
