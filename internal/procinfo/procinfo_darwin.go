// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package procinfo

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sZOMB is <sys/proc.h>'s p_stat of an unreaped process.
const sZOMB = 5

func lookup(pid int) (Info, error) {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	// x/sys/unix reports sysctl's empty result as EIO.
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EIO) || (err == nil && int(kp.Proc.P_pid) != pid) {
		if unix.Kill(pid, 0) == unix.ESRCH {
			return Info{}, fmt.Errorf("look up process %d: %w", pid, ErrNotExist)
		}
		return Info{}, fmt.Errorf("look up process %d: %w: sysctl kern.proc.pid found none", pid, ErrHidden)
	}
	if err != nil {
		return Info{}, fmt.Errorf("look up process %d: sysctl kern.proc.pid: %w", pid, err)
	}
	p := &kp.Proc
	comm, _, _ := strings.Cut(string(p.P_comm[:]), "\x00")
	info := Info{
		PID:       pid,
		Zombie:    p.P_stat == sZOMB,
		StartTime: uint64(p.P_starttime.Nano() / 1e3),
		Started:   time.Unix(p.P_starttime.Unix()),
		Comm:      comm,
	}
	// kern.procargs2 fails for other users' processes and for zombies.
	buf, err := unix.SysctlRaw("kern.procargs2", pid)
	if err != nil {
		info.ExecutableErr = fmt.Errorf("sysctl kern.procargs2 %d: %w", pid, err)
	} else if info.Executable, err = parseProcArgs2(buf); err != nil {
		info.ExecutableErr = err
	}
	return info, nil
}

func nested(int) ([]Nested, error)               { return nil, nil }
func currentPIDNamespace() (PIDNamespace, error) { return PIDNamespace{Initial: true}, nil }

var bootTime = sync.OnceValues(func() (time.Time, error) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return time.Time{}, fmt.Errorf("read boot time: sysctl kern.boottime: %w", err)
	}
	return time.Unix(tv.Unix()), nil
})

var bootID = sync.OnceValues(func() (string, error) {
	id, err := unix.Sysctl("kern.bootsessionuuid")
	if err != nil {
		return "", fmt.Errorf("read boot id: sysctl kern.bootsessionuuid: %w", err)
	}
	return strings.TrimSpace(id), nil
})
