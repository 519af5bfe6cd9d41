// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

//go:build unix

package gc

import (
	"io"
	"io/fs"
	"os"

	"github.com/stacklok/go-microvm/internal/sysat"
)

// dirReader lists a directory through os.File.ReadDir in batches, with
// each entry's type from the listing.
type dirReader struct {
	f       *os.File
	pending []fs.DirEntry
	done    bool
}

// newDirReader opens the directory fd again (its own open file
// description, so fd's offset stays the caller's) for listing.
func newDirReader(fd int) (*dirReader, error) {
	again, err := sysat.Openat(fd, ".", sysat.DirFlags, 0)
	if err != nil {
		return nil, err
	}
	return &dirReader{f: os.NewFile(uintptr(again), ".")}, nil
}

// next returns the next entry, or ok false at the end.
func (r *dirReader) next() (e dirent, ok bool, err error) {
	for len(r.pending) == 0 {
		if r.done {
			return dirent{}, false, nil
		}
		r.pending, err = r.f.ReadDir(256)
		if err == io.EOF {
			r.done, err = true, nil
		}
		if err != nil {
			return dirent{}, false, err
		}
	}
	d := r.pending[0]
	r.pending = r.pending[1:]
	t := typeOther
	switch {
	case d.IsDir():
		t = typeDir
	case d.Type()&fs.ModeIrregular != 0:
		t = typeUnknown
	}
	return dirent{name: d.Name(), typ: t}, true, nil
}

// close closes the reader's descriptor.
func (r *dirReader) close() { _ = r.f.Close() }
